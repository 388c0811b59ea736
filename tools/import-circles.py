#!/usr/bin/env python3
"""Import circles between the modules of each crate, and crates that import a plugin.

Why: issue 16 asks that no two modules of a crate use each other (directly
or round a longer loop) and that no crate depends on a plugin, so a reader
can take the modules of a crate in one order. Nodes are source files; an
edge A -> B is a `crate::`/`super::` path in A (in a `use` or inline)
that names B or an item B defines. A path through a `mod.rs` that only
re-exports (`pub use child::Item`) counts as an edge to the child that
defines the item. Declaring or re-exporting one's own children is
structure, not an edge. `#[cfg(test)]` modules are skipped: a test may
reach anywhere. The fuzz harness (fuzz/) may depend on a plugin: it is
that plugin's test, not a crate built on it.

Usage: tools/import-circles.py [ROOT]; prints the edges with -v. Exit
status 1 when a circle or a plugin dependency is found.
"""
import glob
import os
import re
import sys
import tomllib

ROOT = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "."
VERBOSE = "-v" in sys.argv


def strip_comments_and_tests(text):
    """Source without comments, string contents and #[cfg(test)] items."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i)
            i = n if j < 0 else j + 2
        elif text[i] == '"' and not re.match(r"[\w']", text[i - 1 : i] or " "):
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif text.startswith("#[cfg(test)]", i):
            # skip the next item: up to its matching closing brace or semicolon
            j = i + len("#[cfg(test)]")
            while j < n and text[j] not in "{;":
                j += 1
            if j < n and text[j] == "{":
                depth = 0
                while j < n:
                    if text[j] == "{":
                        depth += 1
                    elif text[j] == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [[a,b],[a,c,d],[a,c,e]] (renames and globs kept as names)."""
    tree = re.sub(r"\s+", "", tree)

    def parse(s, pos):
        prefix, paths = [], []
        while pos < len(s):
            m = re.match(r"(\w+|\*)(as\w+)?", s[pos:]) if s[pos] != "{" else None
            if m:
                prefix.append(m.group(1))
                pos += m.end()
                if s.startswith("::", pos):
                    pos += 2
                    continue
                paths.append(prefix)
                return paths, pos
            if s[pos] == "{":
                pos += 1
                while s[pos] != "}":
                    sub, pos = parse(s, pos)
                    paths += [prefix + p for p in sub]
                    if s[pos] == ",":
                        pos += 1
                return paths, pos + 1
            return paths, pos
        if prefix:
            paths.append(prefix)
        return paths, pos

    # "as" renames: "x as y" became "xasy"; undo so the name is x
    tree = re.sub(r"(\w+)as(\w+)", lambda m: m.group(0), tree)
    paths, _ = parse(re.sub(r"\bas\b", "", tree), 0)
    return paths


def crate_modules(src):
    """{module path tuple: file} for every .rs under src (bin/ excluded)."""
    mods = {}
    for f in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(f, src)
        if rel.startswith("bin" + os.sep):
            continue
        parts = rel[:-3].split(os.sep)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        mods.setdefault(tuple(parts), []).append(f)
    return mods


def analyse(src):
    mods = crate_modules(src)
    texts = {m: "".join(strip_comments_and_tests(open(f).read()) for f in fs) for m, fs in mods.items()}
    reexports = {}
    for m, t in texts.items():
        for u in re.findall(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", t):
            for p in expand_use_tree(u):
                if p[0] == "self":
                    p = p[1:]
                if p and p[0] == "crate":
                    target = tuple(p[1:-1])
                elif p and p[0] != "super":
                    target = m + tuple(p[:-1])
                else:
                    continue
                reexports[(m, p[-1])] = target

    def resolve(m, path):
        if path[0] == "crate":
            cur, rest = (), path[1:]
        elif path[0] == "super":
            cur, rest = m, path
            while rest and rest[0] == "super":
                cur, rest = cur[:-1], rest[1:]
        else:
            return None
        while rest and cur + (rest[0],) in mods:
            cur, rest = cur + (rest[0],), rest[1:]
        seen = 0
        while rest and (cur, rest[0]) in reexports and seen < 8:
            nxt = reexports[(cur, rest[0])]
            if nxt not in mods or nxt == cur:
                break
            cur, seen = nxt, seen + 1
        return cur

    edges = set()
    for m, t in texts.items():
        paths = []
        for u in re.findall(r"\buse\s+([^;]+);", t):
            paths += expand_use_tree(u)
        paths += [p.split("::") for p in re.findall(r"\b(?:crate|super)(?:::\w+)+", t)]
        for p in paths:
            if not p or p[0] not in ("crate", "super"):
                continue
            target = resolve(m, tuple(p))
            if target is None or target == m or target[: len(m)] == m:
                continue  # itself, or its own children
            edges.add((m, target))
    return mods, edges


def cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    graph = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, []):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def main():
    ws = tomllib.load(open(os.path.join(ROOT, "Cargo.toml"), "rb"))
    bad = 0
    for member in ws["workspace"]["members"]:
        d = os.path.join(ROOT, member)
        manifest = tomllib.load(open(os.path.join(d, "Cargo.toml"), "rb"))
        deps = {}
        for sect in ("dependencies", "dev-dependencies", "build-dependencies"):
            deps.update(manifest.get(sect, {}))
        wsdeps = ws["workspace"].get("dependencies", {})
        for name, spec in deps.items():
            base = d
            if isinstance(spec, dict) and spec.get("workspace"):
                spec, base = wsdeps.get(name, {}), ROOT
            path = spec.get("path") if isinstance(spec, dict) else None
            plugins = os.path.normpath(os.path.join(ROOT, "plugins")) + os.sep
            if path and os.path.normpath(os.path.join(base, path)).startswith(plugins):
                if member.startswith("fuzz/"):
                    # the fuzz harness drives a plugin's parsers: a test of it, not a layer above it
                    print(f"note: {member} (fuzz harness) drives the plugin {name}")
                    continue
                print(f"{member}: depends on the plugin {name} ({path})")
                bad = 1
        src = os.path.join(d, "src")
        if not os.path.isdir(src):
            continue
        mods, edges = analyse(src)
        for a, b in sorted(edges):
            if VERBOSE:
                print(f"{member}: {'::'.join(a) or 'crate'} -> {'::'.join(b) or 'crate'}")
        for comp in cycles(mods.keys(), edges):
            names = ", ".join("::".join(c) or "crate" for c in comp)
            inner = sorted(f"{'::'.join(a) or 'crate'} -> {'::'.join(b) or 'crate'}" for a, b in edges if a in comp and b in comp)
            print(f"{member}: circle between {names}: {'; '.join(inner)}")
            bad = 1
    if not bad:
        print("no import circle, no crate depends on a plugin")
    return bad


if __name__ == "__main__":
    sys.exit(main())
