#!/usr/bin/python3 -I
"""agentos tool provider for `api_call`: one HTTP GET or POST, honouring the `hosts` allow-list.

Declare it with `--provider api_call=/path/to/http_fetch.py,network` (`network` gives this
provider, and only it, the host's network).

stdin: {"action": "api_call",
        "params": {"url": "http://host[:port]/path", "method": "GET" | "POST",
                   "headers": {"Name": "value"}, "body": "text", "timeout_s": 20},
        "constraints": {"hosts": ["api.example.com", "*.example.org"], ...}}
stdout, exit 0: {"status": 200, "url": final URL, "headers": {...}, "body": "text",
                 "truncated": false}  (an HTTP error status is a result too)
stdout, exit 3: {"error": "..."} when the call is refused: a host outside `hosts`, a
                 redirect to another host, a scheme other than http/https
stdout, exit 1: {"error": "..."} when the request fails (connection refused, timeout, ...)

Standard library only (urllib). The kernel has already checked the URL's host against the
agent's and the base policy; this provider checks it again and refuses every redirect that
leaves the original host.
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

MAX_BODY = 512 * 1024
EXIT_REFUSED = 3


class Refused(Exception):
    pass


def host_allowed(host, hosts):
    """The kernel's `hosts` semantics: exact, `*`, or `*.suffix` (a strict subdomain)."""
    if not hosts:
        return True
    host = host.lower().rstrip(".")
    for entry in hosts:
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith("." + entry[2:]):
            return True
    return False


def check_url(url, hosts):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise Refused(f"{url} names no host")
    if not host_allowed(parts.hostname, hosts):
        raise Refused(f"host {parts.hostname} is not in hosts {hosts}")
    return parts.hostname


class SameHostRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, host, hosts):
        self.host = host
        self.hosts = hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = check_url(newurl, self.hosts)
        if target != self.host:
            raise Refused(f"redirect from {self.host} to another host ({target}) refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(params, constraints):
    url = params.get("url")
    if not isinstance(url, str):
        raise ValueError("params.url (a string) is required")
    hosts = constraints.get("hosts") or []
    host = check_url(url, hosts)
    method = str(params.get("method", "GET")).upper()
    if method not in ("GET", "POST"):
        raise ValueError(f"method {method} is not GET or POST")
    body = params.get("body")
    data = body.encode() if isinstance(body, str) and method == "POST" else None
    headers = params.get("headers") or {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), SameHostRedirects(host, hosts)
    )
    timeout = float(params.get("timeout_s", 20))
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        resp = e
    raw = resp.read(MAX_BODY + 1)
    return {
        "status": resp.status if hasattr(resp, "status") else resp.code,
        "url": resp.geturl(),
        "headers": dict(resp.headers.items()),
        "body": raw[:MAX_BODY].decode("utf-8", errors="replace"),
        "truncated": len(raw) > MAX_BODY,
    }


def main():
    try:
        request = json.load(sys.stdin)
        result = fetch(request.get("params") or {}, request.get("constraints") or {})
    except Refused as e:
        print(json.dumps({"error": str(e)}))
        return EXIT_REFUSED
    except Exception as e:  # one clear error line for the kernel, whatever went wrong
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
