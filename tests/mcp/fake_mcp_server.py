#!/usr/bin/python3 -I
"""A tiny MCP server over stdio (newline-delimited JSON-RPC), for the kernel's failure tests:
tools that hang, crash, or answer too much. The main MCP tests use the MCP project's own
reference server; this one only makes failures happen on cue.

Tools: `echo` {message} answers the message; `sleep` writes `sleeping` to stderr, then never
answers; `crash` exits mid-call; `big` {n} answers n bytes of text."""

import json
import os
import sys
import time

TOOLS = [
    {"name": n, "description": d, "inputSchema": {"type": "object"}}
    for n, d in [
        ("echo", "Answers its message"),
        ("sleep", "Never answers"),
        ("crash", "Exits mid-call"),
        ("big", "Answers n bytes"),
    ]
]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text(s):
    return {"content": [{"type": "text", "text": s}], "isError": False}


for line in sys.stdin:
    try:
        req = json.loads(line)
    except ValueError:
        continue
    if "id" not in req:
        continue  # a notification
    rid, method, params = req["id"], req.get("method"), req.get("params") or {}
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "agentos-fake", "version": "1"},
        }})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name, args = params.get("name"), params.get("arguments") or {}
        if name == "echo":
            send({"jsonrpc": "2.0", "id": rid, "result": text("echo: " + str(args.get("message")))})
        elif name == "sleep":
            sys.stderr.write("sleeping\n")
            sys.stderr.flush()
            time.sleep(3600)
        elif name == "crash":
            sys.stderr.write("crashing on purpose\n")
            sys.stderr.flush()
            os._exit(7)
        elif name == "big":
            send({"jsonrpc": "2.0", "id": rid, "result": text("x" * int(args.get("n", 0)))})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "no such tool"}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}})
