#!/usr/bin/python3 -I
"""agentos tool provider for `database_query`: one SQL statement on a SQLite database,
honouring the rule's `mode`.

Declare it with the database and its directory (SQLite writes a journal beside the file):
  --provider database_query=/path/to/sqlite_query.py,rw=/data,arg=/data/app.db
or, for a database that must never be written, read-only:
  --provider database_query=/path/to/sqlite_query.py,ro=/data/app.db,arg=/data/app.db
Without `arg=`, params.db names the database (an absolute path the provider can reach).

stdin: {"action": "database_query",
        "params": {"query": "SELECT ...", "params": [..] or {..}, "db": "/path"},
        "constraints": {"mode": "read_only" | "read_write", ...}}
stdout, exit 0: {"columns": [...], "rows": [[...], ...], "rowcount": n}
stdout, exit 3: {"error": "..."} when the statement would write under `mode: read_only`
stdout, exit 1: {"error": "..."} for any other failure (syntax, missing table, ...)

Under `read_only` the database is opened `file:...?mode=ro` and `PRAGMA query_only=ON` is set,
so SQLite itself refuses every write. Standard library only (sqlite3).
"""

import json
import sqlite3
import sys

EXIT_REFUSED = 3
MAX_ROWS = 10000


def run(request, configured):
    params = request.get("params") or {}
    mode = (request.get("constraints") or {}).get("mode", "read_only")
    path = configured or params.get("db")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("no database: give the provider arg=/path/to/db or params.db")
    query = params.get("query")
    if not isinstance(query, str):
        raise ValueError("params.query (a string) is required")
    args = params.get("params") or []
    if mode == "read_only":
        quoted = path.replace("?", "%3f").replace("#", "%23")
        db = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True)
        db.execute("PRAGMA query_only=ON")
    else:
        db = sqlite3.connect(path)
    try:
        cur = db.execute(query, args)
        rows = cur.fetchmany(MAX_ROWS)
        columns = [c[0] for c in cur.description] if cur.description else []
        db.commit()
        return {"columns": columns, "rows": rows, "rowcount": cur.rowcount}
    finally:
        db.close()


def main():
    configured = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        request = json.load(sys.stdin)
        mode = (request.get("constraints") or {}).get("mode", "read_only")
        result = run(request, configured)
    except sqlite3.OperationalError as e:
        readonly = "readonly" in str(e) or "query_only" in str(e)
        if mode == "read_only" and readonly:
            print(json.dumps({"error": f"the rule is read_only: {e}"}))
            return EXIT_REFUSED
        print(json.dumps({"error": f"sqlite: {e}"}))
        return 1
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
