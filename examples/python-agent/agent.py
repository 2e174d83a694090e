"""A Python agent under agentos: keeps notes in its working memory, checks its policy, runs a
tool with `exec`, makes an `api_call`, and shuts down cleanly on SIGTERM.

    ./target/release/agentctl run --policy examples/python-agent/.agents/security.md \\
        -- python3 examples/python-agent/agent.py

The kernel puts its own read-only copy of the `agentos` package on PYTHONPATH, so nothing
needs installing (and the agent must not run under `python3 -I`, which ignores PYTHONPATH).
"""

import json
import sys
import threading

import agentos
from agentos import Signal

stop = threading.Event()


def main() -> int:
    client = agentos.Client.connect()
    print(f"agent {client.agent_id} connected (sdk {agentos.SDK_NAME})", flush=True)
    client.on_signal(Signal.TERM, lambda sig, reason: (print(f"got {sig.signame} ({reason}): finishing up", flush=True), stop.set()))

    # Working memory: write, append, read back, list, stat.
    client.write("/mem/working/notes/plan.md", "# plan\n- read the notes\n")
    client.append("/mem/working/notes/plan.md", "- summarise them\n")
    client.write("/mem/working/notes/facts.md", "water boils at 100 C\n")
    plan = client.read("/mem/working/notes/plan.md").decode()
    print(f"plan has {len(plan.splitlines())} lines", flush=True)
    names = sorted(e.name for e in client.list("/mem/working/notes"))
    print(f"notes: {', '.join(names)}", flush=True)
    st = client.stat("/mem/working/notes/facts.md")
    print(f"facts.md: {st.size} bytes, {st.kind.name.lower()}", flush=True)

    # Ask the policy before acting: a dry run is never a violation.
    for action, resource in [("file_write", "/mem/working/notes/x.md"), ("file_write", "/etc/passwd")]:
        d = client.check_policy(action, resource)
        verdict = "allowed" if d.allowed else "denied"
        print(f"policy: {action} {resource}: {verdict} by {d.rule or 'default deny'}", flush=True)

    # A tool run in its own sandbox, and an api_call through the tool provider.
    try:
        out = client.exec(["/usr/bin/wc", "-l"], stdin=plan)
        print(f"exec wc -l: {out.stdout.decode().strip()} (status {out.status})", flush=True)
    except agentos.Unsupported as e:
        print(f"exec: this kernel does not serve it yet ({e})", flush=True)
    try:
        result = client.call("api_call", json.dumps({"url": "https://api.example.com/weather?city=Paris"}))
        client.write("/mem/working/notes/weather.json", result)
        print("api_call: stored the weather", flush=True)
    except agentos.Unsupported as e:
        print(f"api_call: this kernel does not serve it yet ({e})", flush=True)

    summary = f"{len(names)} notes; plan:\n{plan}"
    client.write("/mem/working/notes/summary.md", summary)
    client.unlink("/mem/working/notes/facts.md")
    print("summary written; done", flush=True)
    client.announce_exit(0)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except agentos.PermissionDenied as e:
        print(f"denied: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
