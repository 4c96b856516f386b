#!/usr/bin/env python3
"""check_layers.py — the rules of the layout that the build enforces.

The layers and what each may use are written ONCE, in LAYERS below (the
"Layout" table of docs/architecture.md). Three checks read the real tree and
the real build, and print every violation on its own line:

  include   a source file includes a header of another folder that is not in
            that folder's public include directory (<folder>/include/, or
            proto's generated runnel.pb-c.h), e.g. any *_int.h; or a public
            header of a folder it may not use.
            Read from: the #include "..." lines of every .c/.h under the
            layer folders (tests/, bench/, fuzz/ are white-box and exempt).
            A name is resolved like the compiler does here: next to the
            including file first, then anywhere in the tree by path suffix.

  link      a CMake target links a project library of a folder it may not
            use (a folder above it), or one target compiles the sources of
            several folders (each folder is its own library).
            Read from: the link graph CMake itself holds, dumped at the end of
            configure by tests/build/CMakeLists.txt into
            <build>/tests/build/link_graph.tsv (each buildsystem target's
            SOURCE_DIR, BINARY_DIR, SOURCES, LINK_LIBRARIES and
            INTERFACE_LINK_LIBRARIES, i.e. what target_link_libraries() said).

  cycle     two folders call each other: a file of A uses a global symbol
            defined in B and a file of B uses one defined in A (and longer
            circles, as strongly connected components).
            Read from: `nm` on every object file of the build
            (<build>/**/CMakeFiles/<target>.dir/**.o), each object mapped back
            to its source file and so to its folder.

Exit status: 0 when there is no violation; 1 when there is one (strict); 0
with every violation printed as a warning when RN_LAYERS_WARN_ONLY=1 (the
tree is mid-refactor; the lead turns strict mode on: cmake
-DRN_LAYERS_STRICT=ON). 2 on a usage or environment error (no build, no nm).

  check_layers.py --source DIR --build DIR
  check_layers.py --self-test        # builds a tiny fake tree with one
                                     # violation of each kind and checks that
                                     # exactly those are reported
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

# ---- the one table ---------------------------------------------------------------------------

# folder -> the folders it may use directly; what those may use is allowed
# too (the closure), so each row names only its own level. "broker" is
# runneld itself (broker/main.c, broker/config.*), the top. Folders not
# here (tests, bench, fuzz, deploy, docs) are exempt.
LAYERS = {
    "base": [],
    "proto": ["base"],
    "storage": ["proto", "base"],  # storage/tier/ is part of storage
    "broker/core": ["storage", "proto", "base"],
    "broker/groups": ["broker/core"],
    "broker/sinks": ["broker/core"],
    # base only: rn_err_t is base's since the error table moved there
    "broker/net": ["base"],
    "broker/cluster": ["broker/core", "broker/net"],
    "broker/http": ["broker/net", "broker/core", "broker/groups", "broker/sinks"],
    "broker/native": ["broker/net", "broker/core", "broker/groups", "broker/sinks"],
    # the HTTP applications run on broker/http. admin is the lowest of them:
    # its reply path (rn_admin.h) and tables (rn_admin_codec.h: the Kinesis
    # error and operation tables, JSON strings) are what every application
    # answers and counts through, so kinesis and rest use admin. rest uses
    # kinesis too: REST ingest is the Kinesis produce path (partition keys,
    # hash ranges, sequence numbers, throughput limits) with another body.
    "broker/apps/admin": ["broker/http", "broker/net", "broker/core", "broker/groups", "broker/sinks"],
    "broker/apps/kinesis": ["broker/apps/admin", "broker/http", "broker/net", "broker/core", "broker/groups",
                            "broker/sinks"],
    "broker/apps/rest": ["broker/apps/kinesis", "broker/apps/admin", "broker/http", "broker/net", "broker/core",
                         "broker/groups", "broker/sinks"],
    # broker/apps itself: the routes table that mounts the applications
    "broker/apps": ["broker/apps/kinesis", "broker/apps/rest", "broker/apps/admin", "broker/http"],
    "broker": ["broker/apps", "broker/native", "broker/http", "broker/cluster", "broker/groups", "broker/sinks",
               "broker/net", "broker/core"],
    "client": ["proto", "base"],
    "tools": ["client", "proto", "base"],
}

EXEMPT = ("tests", "bench", "fuzz", "deploy", "docs")


def closure(layers):
    out = {}
    for f in layers:
        seen, todo = set(), list(layers[f])
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(layers.get(g, []))
        out[f] = seen
    return out


ALLOWED = closure(LAYERS)
# longest prefix first, so broker/apps/kinesis wins over broker/apps and broker
FOLDERS = sorted(LAYERS, key=lambda f: -len(f))


def folder_of(rel):
    """The layer folder of a path relative to the source root, or None."""
    rel = rel.replace(os.sep, "/")
    for f in FOLDERS:
        if rel == f or rel.startswith(f + "/"):
            return f
    return None


def may_use(a, b):
    return a == b or b in ALLOWED.get(a, ())


class Report:
    def __init__(self):
        self.items = collections.defaultdict(list)

    def add(self, kind, msg):
        self.items[kind].append(msg)

    def count(self):
        return sum(len(v) for v in self.items.values())


# ---- include -------------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def tree_files(src, exts):
    out = []
    for f in LAYERS:
        top = os.path.join(src, f)
        if not os.path.isdir(top):
            continue
        for dp, dns, fns in os.walk(top):
            dns[:] = [d for d in dns if not d.startswith(".") and d != "build"]
            for fn in fns:
                if fn.endswith(exts):
                    out.append(os.path.relpath(os.path.join(dp, fn), src).replace(os.sep, "/"))
    return sorted(set(out))


def is_public(hdr_rel, owner):
    """Is the header (path relative to the source root) in owner's public
    include directory? proto's generated header counts as public."""
    if hdr_rel.startswith("<gen>/"):
        return True
    base = os.path.basename(hdr_rel)
    if base.endswith("_int.h"):
        return False
    return hdr_rel.startswith(owner + "/include/")


def check_includes(src, build, rep):
    headers = tree_files(src, (".h",))
    by_suffix = collections.defaultdict(list)
    for h in headers:
        parts = h.split("/")
        for i in range(len(parts)):
            by_suffix["/".join(parts[i:])].append(h)
    gen = {}
    if build:
        for dp, _, fns in os.walk(os.path.join(build, "proto")):
            for fn in fns:
                if fn.endswith(".pb-c.h"):
                    gen[fn] = "<gen>/" + fn
    for rel in tree_files(src, (".c", ".h")):
        me = folder_of(rel)
        if me is None:
            continue
        with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                name = m.group(2)
                here = os.path.normpath(os.path.join(os.path.dirname(rel), name)).replace(os.sep, "/")
                if m.group(1) == '"' and here in headers:
                    hdr = here
                elif name in gen:
                    hdr = gen[name]
                else:
                    cands = by_suffix.get(name, [])
                    if not cands:
                        continue  # a system or third-party header
                    same = [c for c in cands if folder_of(c) == me]
                    hdr = (same or cands)[0]
                owner = "proto" if hdr.startswith("<gen>/") else folder_of(hdr)
                if owner is None or owner == me:
                    continue
                if not is_public(hdr, owner):
                    rep.add("include", f'{rel}:{lineno} includes "{name}" ({hdr}), private to {owner}/'
                            f' (public headers live in {owner}/include/)')
                elif not may_use(me, owner):
                    rep.add("include", f'{rel}:{lineno} includes "{name}" of {owner}/, which {me}/ may not use')


# ---- link ----------------------------------------------------------------------------------

GRAPH = os.path.join("tests", "build", "link_graph.tsv")


def load_graph(build):
    """target -> dict(type, source_dir, binary_dir, sources, links)."""
    path = os.path.join(build, GRAPH)
    if not os.path.exists(path):
        raise SystemExit(f"check_layers: {path} is missing (configure with tests enabled)")
    tg = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 7:
                continue
            name, typ, sdir, bdir, srcs, links, iface = f[:7]
            tg[name] = {"type": typ, "source_dir": sdir, "binary_dir": bdir,
                        "sources": [s for s in srcs.split(";") if s],
                        "links": [s for s in (links + ";" + iface).split(";") if s]}
    return tg


def rel_to(src, p):
    r = os.path.relpath(os.path.realpath(p), os.path.realpath(src)).replace(os.sep, "/")
    return None if r.startswith("../") else r


def target_folders(src, t):
    """The layer folders of a target's sources; a generated source (in the
    build tree) counts for the folder that defines the target."""
    own = rel_to(src, t["source_dir"])
    fs = set()
    for s in t["sources"]:
        if s.startswith("$<"):
            continue  # $<TARGET_OBJECTS:x>: x is checked on its own
        p = s if os.path.isabs(s) else os.path.join(t["source_dir"], s)
        r = rel_to(src, p) if rel_to(t["binary_dir"], p) is None else None
        fs.add(folder_of(r) if r else (folder_of(own) if own else None))
    if not fs and own is not None:
        fs.add(folder_of(own))
    return fs


def top_folder(fs):
    """The folder a multi-folder target stands for: the one the others are
    all below (their common ancestor path)."""
    fs = [f for f in fs if f]
    if not fs:
        return None
    common = os.path.commonpath(fs).replace(os.sep, "/")
    return folder_of(common) if common else None


def check_links(src, tg, rep):
    folder = {}
    for name, t in tg.items():
        own = rel_to(src, t["source_dir"])
        if own is None or own.split("/")[0] in EXEMPT:
            continue
        fs = target_folders(src, t)
        fs.discard(None)
        if not fs:
            continue
        if len(fs) > 1:
            rep.add("link", f"target {name} compiles the sources of {len(fs)} folders ({', '.join(sorted(fs))}):"
                    " each folder is its own library")
        folder[name] = top_folder(fs) if len(fs) > 1 else next(iter(fs))
    for name, t in sorted(tg.items()):
        me = folder.get(name)
        if me is None:
            continue
        deps = []
        for dep in t["links"]:
            m = re.match(r"^\$<LINK_ONLY:(.*)>$", dep)
            dep = m.group(1) if m else dep
            if dep not in deps:
                deps.append(dep)  # PRIVATE links of a static library show up twice
        for dep in deps:
            if dep not in tg or dep not in folder:
                continue  # imported (PkgConfig::..., Threads::Threads) or exempt
            other = folder[dep]
            if other and not may_use(me, other):
                rep.add("link", f"target {name} ({me}/) links {dep} ({other}/), which {me}/ may not use")
    return folder


# ---- cycle ---------------------------------------------------------------------------------

DEF_TYPES = set("TDBRCGSVWiu")


def objects(src, tg):
    """[(object path, source path relative to src)] of every non-exempt
    target: the objects its SOURCES compile to, named as CMake names them
    (<BINARY_DIR>/CMakeFiles/<target>.dir/<source relative to SOURCE_DIR,
    or to BINARY_DIR when generated>.o), so a stale object of a source that
    moved away is never read."""
    out = []
    for name, t in tg.items():
        own = rel_to(src, t["source_dir"])
        if own is None or own.split("/")[0] in EXEMPT:
            continue
        d = os.path.join(t["binary_dir"], "CMakeFiles", name + ".dir")
        for s in t["sources"]:
            if s.startswith("$<") or not s.endswith((".c", ".cc", ".cpp", ".S")):
                continue
            p = os.path.normpath(s if os.path.isabs(s) else os.path.join(t["source_dir"], s))
            gen = rel_to(t["binary_dir"], p) if not os.path.exists(p) or rel_to(t["binary_dir"], p) else None
            inner = gen if gen else os.path.relpath(p, t["source_dir"]).replace(os.sep, "/").replace("../", "__/")
            o = os.path.join(d, inner + ".o")
            if not os.path.exists(o):
                continue
            r = rel_to(src, p) if not gen else None
            out.append((o, r if r else own + "/" + os.path.basename(p)))  # generated: the defining folder's
    return out


def nm_symbols(objs):
    """{object: (defined set, undefined set)} from one nm run per chunk."""
    nm = shutil.which("nm")
    if not nm:
        raise SystemExit("check_layers: nm not found (binutils)")
    res = {o: (set(), set()) for o in objs}
    for i in range(0, len(objs), 200):
        chunk = objs[i:i + 200]
        p = subprocess.run([nm, "-A", "-g", "--no-sort"] + chunk, capture_output=True, text=True)
        if p.returncode != 0 and not p.stdout:
            raise SystemExit(f"check_layers: nm failed: {p.stderr.strip()}")
        for line in p.stdout.splitlines():
            # "<file>:<value> <type> <name>" or "<file>:                 U <name>"
            path, _, rest = line.partition(": ") if ": " in line else line.partition(":")
            f = rest.split()
            if len(f) < 2 or path not in res:
                continue
            typ, sym = f[-2], f[-1]
            if typ == "U":
                res[path][1].add(sym)
            elif typ in DEF_TYPES:
                res[path][0].add(sym)
    return res


def check_cycles(src, tg, rep):
    objs = objects(src, tg)
    if not objs:
        rep.add("cycle", "no object files found under the build directory: build first")
        return
    src_of = dict(objs)
    syms = nm_symbols(sorted(src_of))
    # per source file (objects of the same source in two targets count once)
    defs = collections.defaultdict(set)  # symbol -> source files
    uses = collections.defaultdict(set)  # source file -> undefined symbols
    for o, (d, u) in syms.items():
        s = src_of[o]
        for x in d:
            defs[x].add(s)
        uses[s] |= u
    edges = collections.defaultdict(lambda: collections.defaultdict(list))  # A -> B -> [(file, sym, deffile)]
    for s, u in uses.items():
        a = folder_of(s)
        if a is None:
            continue
        for x in sorted(u):
            ds = defs.get(x)
            if not ds:
                continue
            for dfile in sorted(ds):
                b = folder_of(dfile)
                if b and b != a:
                    edges[a][b].append((s, x, dfile))
    done = set()
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if a in edges.get(b, {}) and (b, a) not in done:
                done.add((a, b))
                ab, ba = edges[a][b], edges[b][a]
                rep.add("cycle", f"{a}/ <-> {b}/: {ab[0][0]} uses {ab[0][1]} ({ab[0][2]})"
                        f"{f' and {len(ab) - 1} more' if len(ab) > 1 else ''}; {ba[0][0]} uses {ba[0][1]} ({ba[0][2]})"
                        f"{f' and {len(ba) - 1} more' if len(ba) > 1 else ''}")
    # longer circles: strongly connected components of more than two folders
    for comp in sccs({a: set(bs) for a, bs in edges.items()}):
        if len(comp) > 2:
            rep.add("cycle", "circle through " + " -> ".join(f + "/" for f in comp))
    # and every use of a folder one may not use, as evidence for the lead
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if not may_use(a, b) and a in LAYERS and b in LAYERS:
                u = edges[a][b]
                rep.add("calls", f"{a}/ calls into {b}/, which it may not use: {u[0][0]} uses {u[0][1]} ({u[0][2]})"
                        f"{f' and {len(u) - 1} more' if len(u) > 1 else ''}")


def sccs(g):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    nodes = sorted(set(g) | {b for bs in g.values() for b in bs})

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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
            out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


# ---- driver --------------------------------------------------------------------------------

def run(src, build):
    rep = Report()
    check_includes(src, build, rep)
    tg = load_graph(build)
    check_links(src, tg, rep)
    check_cycles(src, tg, rep)
    return rep


def print_report(rep, warn_only, out=sys.stdout):
    word = "warning" if warn_only else "violation"
    for kind in ("include", "link", "cycle", "calls"):
        for msg in rep.items.get(kind, []):
            print(f"check_layers: {word}: {kind}: {msg}", file=out)
    counts = ", ".join(f"{len(rep.items.get(k, []))} {k}" for k in ("include", "link", "cycle", "calls"))
    if rep.count() == 0:
        print("check_layers: the layout holds (0 violations)", file=out)
    elif warn_only:
        print(f"check_layers: {rep.count()} violations ({counts}); passing because RN_LAYERS_WARN_ONLY=1", file=out)
    else:
        print(f"check_layers: {rep.count()} violations ({counts})", file=out)


SELF_TEST_FILES = {
    "CMakeLists.txt": """cmake_minimum_required(VERSION 3.19)
project(fake C)
add_library(fk_proto STATIC proto/codec.c)
target_include_directories(fk_proto PUBLIC proto/include)
add_library(fk_storage STATIC storage/log.c)
target_include_directories(fk_storage PUBLIC storage/include)
target_link_libraries(fk_storage PUBLIC fk_proto)
# violation (link): proto links storage, a folder above it
target_link_libraries(fk_proto PRIVATE fk_storage)
target_include_directories(fk_proto PRIVATE storage)
add_library(fk_tests STATIC tests/t.c)
target_include_directories(fk_tests PRIVATE proto storage)
target_link_libraries(fk_tests PRIVATE fk_storage)
include(%(dump)s)
""",
    "proto/include/runnel/codec.h": "int codec_encode(int x);\n",
    "proto/codec_int.h": "int codec_private(void);\n",
    # violation (include): proto includes a private header of storage
    "proto/codec.c": '#include "runnel/codec.h"\n#include "codec_int.h"\n#include "log_int.h"\n'
                     "int log_flush(void);\n"
                     "int codec_private(void) { return 1; }\n"
                     "int codec_encode(int x) { return x + log_flush(); } /* violation (cycle): proto calls storage */\n",
    "storage/include/rn_log.h": "int log_append(int x);\n",
    "storage/log_int.h": "int log_flush(void);\n",
    # allowed: storage includes and calls proto's public header
    "storage/log.c": '#include "rn_log.h"\n#include "log_int.h"\n#include "runnel/codec.h"\n#include <stdio.h>\n'
                     "int log_flush(void) { return 0; }\n"
                     "int log_append(int x) { return codec_encode(x); }\n",
    # exempt: tests may include anything
    "tests/t.c": '#include "log_int.h"\n#include "codec_int.h"\nint t(void) { return log_flush() + codec_private(); }\n',
}

SELF_TEST_EXPECT = [
    ("include", 'proto/codec.c:3 includes "log_int.h" (storage/log_int.h), private to storage/'),
    ("link", "target fk_proto (proto/) links fk_storage (storage/), which proto/ may not use"),
    ("cycle", "proto/ <-> storage/: proto/codec.c uses log_flush (storage/log.c)"),
    ("calls", "proto/ calls into storage/, which it may not use: proto/codec.c uses log_flush (storage/log.c)"),
]


def self_test(dump_cmake, cmake="cmake"):
    tmp = tempfile.mkdtemp(prefix="check_layers.")
    try:
        src = os.path.join(tmp, "src")
        for rel, text in SELF_TEST_FILES.items():
            p = os.path.join(src, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as fh:
                fh.write(text % {"dump": dump_cmake} if rel == "CMakeLists.txt" else text)
        build = os.path.join(tmp, "build")
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        for cmd in ([cmake, "-S", src, "-B", build] + gen, [cmake, "--build", build]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout + p.stderr)
                print("check_layers: self-test: the fake tree did not build")
                return 1
        rep = run(src, build)
        print_report(rep, True)
        got = [(k, m) for k in rep.items for m in rep.items[k]]
        bad = 0
        for kind, prefix in SELF_TEST_EXPECT:
            if not any(k == kind and m.startswith(prefix) for k, m in got):
                print(f"check_layers: self-test: FAIL: no {kind} violation starting {prefix!r}")
                bad += 1
        if len(got) != len(SELF_TEST_EXPECT):
            print(f"check_layers: self-test: FAIL: {len(got)} violations reported, {len(SELF_TEST_EXPECT)} expected"
                  " (an allowed include, link or call was reported, or one was missed)")
            bad += 1
        # strict mode fails, warn-only mode passes
        me = os.path.abspath(__file__)
        env = dict(os.environ)
        env.pop("RN_LAYERS_WARN_ONLY", None)
        strict = subprocess.run([sys.executable, me, "--source", src, "--build", build], env=env,
                                capture_output=True, text=True)
        env["RN_LAYERS_WARN_ONLY"] = "1"
        warn = subprocess.run([sys.executable, me, "--source", src, "--build", build], env=env,
                              capture_output=True, text=True)
        if strict.returncode != 1:
            print(f"check_layers: self-test: FAIL: strict mode exited {strict.returncode}, expected 1")
            bad += 1
        if warn.returncode != 0 or "warning: include:" not in warn.stdout:
            print(f"check_layers: self-test: FAIL: warn-only mode exited {warn.returncode} or printed no warnings")
            bad += 1
        print("check_layers: self-test: " + ("FAIL" if bad else "ok: every planted violation found, nothing else"))
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", help="the source tree (top-level CMakeLists.txt)")
    ap.add_argument("--build", help="the configured and built build directory")
    ap.add_argument("--self-test", action="store_true", help="check the checker on a fake tree")
    ap.add_argument("--dump-cmake", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                            "build", "link_graph.cmake"),
                    help="the CMake script that dumps the link graph (for --self-test)")
    ap.add_argument("--cmake", default="cmake", help="the cmake to build the fake tree with (for --self-test)")
    a = ap.parse_args()
    if a.self_test:
        return self_test(os.path.abspath(a.dump_cmake), a.cmake)
    if not a.source or not a.build:
        ap.error("--source and --build are required")
    rep = run(os.path.abspath(a.source), os.path.abspath(a.build))
    warn_only = os.environ.get("RN_LAYERS_WARN_ONLY") == "1"
    print_report(rep, warn_only)
    return 0 if warn_only or rep.count() == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
