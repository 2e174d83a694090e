#!/usr/bin/env python3
"""The kernel crate's shape, in numbers: who names the kernel's shared state, the largest
import cycle among its modules, and its longest functions.

    python3 scripts/shape.py [SRC_DIR] [--json]

SRC_DIR defaults to kernel/src. A module's imports are the `crate::…` and `super::…` paths its
file names (in `use` lines and in code), each resolved to the deepest module file it reaches;
a child module's name used as a path (`calls::dispatch`) counts;
`mod x;` declarations are not imports. Cycles are the strongly connected components of that
graph. Only production code counts, for imports, shared-state names and function lengths: a
file's text from its first `#[cfg(test)]` on, and whole test-only module files (declared
under `#[cfg(test)]`), are left out. Function lengths count the lines from `fn` to its
closing brace. Heuristic text scanning, not a
parser: good for before/after comparisons of the same tree shape, not for exact counts.
"""

import json
import os
import re
import sys

SHARED_STATE = "KernelInner"


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand_use(tree):
    """`a::{b, c::{d, e}}` → [a::b, a::c::d, a::c::e] (paths as strings)."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, flags=re.S)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        for sub in expand_use(item):
            out.append(f"{prefix}::{sub}" if prefix else sub)
    return out


def paths_named(text):
    text = strip_comments(text)
    found = []
    for m in re.finditer(r"\buse\s+((?:crate|super)::[^;]+);", text):
        found += expand_use(m.group(1))
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
        found.append(m.group(1))
    return found


def resolve(modules, me, path):
    parts = [p.strip() for p in path.split("::")]
    parts = [re.sub(r"\s+as\s+\w+$", "", p) for p in parts]
    if parts[0] == "crate":
        base = []
    else:
        base = list(me)
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
        parts = ["crate"] + parts
    cand = tuple(base + parts[1:])
    while cand:
        if cand in modules:
            return cand
        cand = cand[:-1]
    return None


def tarjan(graph):
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return sccs


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    end = len(lines)
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(
            r"\s*(pub(\(crate\))?\s+)?mod\s+\w+", lines[i + 1]
        ):
            end = i
            break
    out = []
    i = 0
    while i < end:
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", lines[i])
        if not m:
            i += 1
            continue
        name, depth, started, j = m.group(6), 0, False, i
        while j < end:
            code = re.sub(r'"(\\.|[^"\\])*"', '""', re.sub(r"//.*", "", lines[j]))
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            if not started and ";" in code and "{" not in code:
                break
            for ch in code:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
            if started and depth == 0:
                out.append((j - i + 1, name, f"{path}:{i + 1}"))
                break
            j += 1
        i += 1
    return out


def production(text):
    """The file's text before its first `#[cfg(test)]` (the test code is left out)."""
    m = re.search(r"^\s*#\[cfg\(test\)\]", text, flags=re.M)
    return text[: m.start()] if m else text


def test_only(src, files):
    """Module files declared under `#[cfg(test)]` (`#[cfg(test)] mod ops_tests;`)."""
    out = set()
    for f in files:
        text = open(f, encoding="utf-8").read()
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([\w:]+\))?\s+)?mod\s+(\w+)\s*;", text):
            base = os.path.dirname(f)
            stem = os.path.basename(f)[:-3]
            if stem not in ("mod", "lib", "main"):
                base = os.path.join(base, stem)
            for cand in (os.path.join(base, m.group(1) + ".rs"), os.path.join(base, m.group(1), "mod.rs")):
                out.add(os.path.normpath(cand))
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else "kernel/src"
    files = []
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                files.append(os.path.join(root, n))
    files.sort()
    skip = test_only(src, files)
    files = [f for f in files if os.path.normpath(f) not in skip]
    modules = {module_of(src, f): f for f in files}
    graph = {m: set() for m in modules}
    shared = []
    for m, f in modules.items():
        text = production(open(f, encoding="utf-8").read())
        if re.search(rf"\b{SHARED_STATE}\b", strip_comments(text)):
            shared.append(os.path.relpath(f, src))
        for p in paths_named(text):
            t = resolve(modules, m, p)
            if t is not None and t != m:
                graph[m].add(t)
        # Paths relative to this module (`self::x::…`, or a child's name: `calls::dispatch`).
        code = strip_comments(text)
        for child in (c for c in modules if len(c) == len(m) + 1 and c[:-1] == m):
            if re.search(rf"(?<![\w:])(self::)?{child[-1]}::", code):
                graph[m].add(child)
    sccs = sorted(tarjan(graph), key=len, reverse=True)
    cycle = sorted("::".join(m) or "lib" for m in sccs[0]) if sccs else []
    funcs = sorted((fn for f in files for fn in functions(f)), reverse=True)[:10]
    report = {
        "src": src,
        "files": len(files),
        "lines": sum(len(open(f, encoding="utf-8").read().split("\n")) for f in files),
        "files_naming_shared_state": len(shared),
        "largest_import_cycle": len(cycle),
        "cycle_members": cycle,
        "longest_functions": [{"lines": n, "fn": name, "at": os.path.relpath(at, src)} for n, name, at in funcs],
    }
    if "--json" in sys.argv:
        print(json.dumps(report, indent=2))
        return
    print(f"{src}: {report['files']} files, {report['lines']} lines")
    print(f"files naming {SHARED_STATE}: {len(shared)}")
    print(f"largest import cycle: {len(cycle)} modules: {', '.join(cycle)}")
    print("longest functions:")
    for f in report["longest_functions"]:
        print(f"  {f['lines']:5}  {f['fn']}  ({f['at']})")


if __name__ == "__main__":
    main()
