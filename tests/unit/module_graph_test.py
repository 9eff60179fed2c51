#!/usr/bin/env python3
"""module_graph_test.py - the core's module boundaries, checked from the code.

core/ is split by stage (docs/architecture.md draws it). A module may only
include headers of modules below it in this order, so the graph has no
circles by construction:

    base < config < telemetry < export < capture < host < pipeline < agent

It also checks that the core keeps no mutable global state other than what
must be process-wide: the signal flag, libbpf's print-hook state (libbpf's
hook is process-global itself), the table of interned attribute keys
(an append-only vocabulary every host may share, behind a lock, with a
per-thread cache, and the read-only segments of the loaded objects that
cache trusts), a free list of span structs (an allocator cache: spans
are made on the pipeline thread and freed on exporters'; a few per thread
without a lock, the rest shared), and two thread-local words of the metrics
registry's batch scope (which registry this thread's slice of records holds
locked). docs/architecture.md
must name every module.
"""
import os
import re
import sys

SRC = os.environ.get("SONDE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORDER = ["base", "config", "telemetry", "export", "capture", "host", "pipeline", "agent"]
GLOBAL_ALLOW = {("agent/agent.c", "stop"), ("capture/capture.c", "capture_last"),
                ("telemetry/intern.c", "lock"), ("telemetry/intern.c", "table"),
                ("telemetry/intern.c", "cap"), ("telemetry/intern.c", "count"),
                ("telemetry/intern.c", "cache"), ("telemetry/intern.c", "ro"),
                ("telemetry/intern.c", "n_ro"), ("telemetry/intern.c", "ro_gen"),
                ("telemetry/intern.c", "ro_read"), ("telemetry/span.c", "pool_lock"),
                ("telemetry/span.c", "pool"), ("telemetry/span.c", "pool_n"),
                ("telemetry/span.c", "local"), ("telemetry/span.c", "local_key"),
                ("telemetry/span.c", "local_once"), ("telemetry/span.c", "local_key_ok"),
                ("telemetry/metrics.c", "batch_m"), ("telemetry/metrics.c", "batch_locked")}

failed = 0


def check(cond, what):
    global failed
    print(("ok   - " if cond else "FAIL - ") + what)
    if not cond:
        failed += 1


core = os.path.join(SRC, "core")
dirs = sorted(d for d in os.listdir(core) if os.path.isdir(os.path.join(core, d)))
check(dirs == sorted(ORDER), f"core/ holds exactly the modules {ORDER} (found {dirs})")

edges = set()
globals_found = []
for mod in dirs:
    for f in sorted(os.listdir(os.path.join(core, mod))):
        if not f.endswith((".c", ".h")):
            continue
        rel = f"{mod}/{f}"
        text = open(os.path.join(core, mod, f)).read()
        for dep in re.findall(r'#include "([a-z]+)/[a-z_0-9]+\.h"', text):
            if dep != mod:
                edges.add((mod, dep, rel))
        # File-scope mutable variables: "static <type> name[...]? (= ...)?;"
        # at column 0, not const, not a function.
        for m in re.finditer(r"^static (?!const)(?!inline)[^;(=\n{]*?\b([a-z_][a-z_0-9]*)\s*(\[[^\]]*\])?\s*(=[^;]*)?;",
                             text, re.M):
            globals_found.append((rel, m.group(1)))
        for m in re.finditer(r"^\s+static (?!const)[a-z_0-9 ]+\b([a-z_][a-z_0-9]*)\s*(\[[^\]]*\])?\s*(=[^;]*)?;",
                             text, re.M):
            globals_found.append((rel, m.group(1)))
        if re.search(r"^static struct \{", text, re.M):
            name = re.search(r"^static struct \{.*?\}\s*([a-z_]+);", text, re.M | re.S)
            globals_found.append((rel, name.group(1) if name else "?"))

for mod, dep, rel in sorted(edges):
    ok = dep in ORDER and mod in ORDER and ORDER.index(dep) < ORDER.index(mod)
    check(ok, f"{rel} includes {dep}/ (allowed: {mod} may use only modules below it)")

bad = [g for g in globals_found if g not in GLOBAL_ALLOW]
check(not bad, f"no mutable globals in core/ beyond {sorted(GLOBAL_ALLOW)} (found {bad})")

arch = open(os.path.join(SRC, "docs", "architecture.md")).read()
for mod in ORDER:
    check(f"core/{mod}/" in arch, f"docs/architecture.md names core/{mod}/")

print(f"{len(edges)} include edges between modules; {'FAILED' if failed else 'no circles'}")
sys.exit(1 if failed else 0)
