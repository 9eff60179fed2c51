#!/usr/bin/env python3
"""Live: the Java plugin follows hand-offs between threads (issue 16).

A JDK HttpServer (com.sun.net.httpserver, 6 handler threads, started before
the agent: the plugin attaches into the running JVM) whose handler does
not call its back end itself but hands the call (HttpURLConnection, plain
HTTP, to a Python back end in this process) to another thread and waits:
  pool     an ExecutorService (a fixed ThreadPoolExecutor of 3 threads)
  cf       CompletableFuture.supplyAsync (the JDK's default async executor:
           a thread per task on JDK 17 with <= 2 CPUs, the common
           ForkJoinPool on JDK 25)
  vthread  a virtual thread (JDK 21+): the virtual thread's key is linked
           to the handler's, and each carrier thread's key word holds the
           key of the virtual thread mounted on it
  vserver  (JDK 21+) the server itself runs every exchange on a virtual
           thread of its own, which sleeps 5 ms (leaves its carrier, comes
           back on either of the two) and calls
and, with contexts on, calls made on the serving thread itself:
  direct      on the handler pool's thread (keyed as a pool task)
  dispatcher  no executor: every exchange on the server's dispatcher thread,
              which existed before the agent (its own thread key)
12 requests, 6 at a time, per case. Every CLIENT span (GET /backend/ID) must
be the child of its own request's SERVER span (GET /req/ID), counted
against the server's log and the back end's.

  0. Baseline, the same JVM code with `contexts: false` (the host's thread
     guess only): a call made on another thread than the request's gets no
     parent. Checked to be wrong (fewer than 12 right): what this test sees
     without the change.
  1. JDK 17 (Debian), pool and cf.
  2. Temurin 25 under /usr/lib/jvm (when present): pool, cf, vthread,
     vserver.
"""
import concurrent.futures
import collections
import http.server
import os
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, finish, free_port,
                        require_live, wait_port, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java_peers")
JDK25 = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java"
N_REQ, PAR = 12, 6


class Backend(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port):
        self.ids = collections.Counter()
        super().__init__(("127.0.0.1", port), BackendHandler)


class BackendHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.ids[self.path] += 1
        body = b"back\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def build(work):
    r = subprocess.run(["javac", "--release", "17", "-d", work,
                        os.path.join(PEERS, "HandoffPeer.java")], capture_output=True, text=True)
    if r.returncode != 0:
        cannot_run(f"javac HandoffPeer failed: {r.stderr[-400:]}")


def get(port, rid):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/req/{rid}", timeout=20) as r:
        return r.read().decode().strip()


def parenting(spans, ids):
    """(right, wrong, orphan, missing) over the ids' client spans."""
    servers, clients = collections.defaultdict(list), collections.defaultdict(list)
    for s in spans:
        p = (s.get("attributes") or {}).get("url.path", "")
        if s.get("kind") == "SERVER" and p.startswith("/req/"):
            servers[p[5:]].append(s)
        elif s.get("kind") == "CLIENT" and p.startswith("/backend/"):
            clients[p[9:]].append(s)
    right = wrong = orphan = missing = 0
    for rid in ids:
        if len(servers[rid]) != 1 or len(clients[rid]) != 1:
            missing += 1
            continue
        s, c = servers[rid][0], clients[rid][0]
        if c["trace_id"] == s["trace_id"] and c.get("parent_span_id") == s["span_id"]:
            right += 1
        elif c.get("parent_span_id"):
            wrong += 1
        else:
            orphan += 1
    return right, wrong, orphan, missing, sum(len(servers[i]) for i in ids)


def run_case(work, java, mode, label, contexts, backend, bport):
    port = free_port()
    cfg = os.path.join(work, f"sonde-{label}.yaml")
    with open(cfg, "w") as f:
        f.write("plugins:\n  java:\n    contexts: %s\n" % ("true" if contexts else "false"))
    flags = ["-XX:+EnableDynamicAgentLoading"] if java == JDK25 else []
    jvm = Proc(["sh", "-c", 'exec "$@"', "x", java, *flags, "-cp", work, "HandoffPeer", str(port), str(bport), mode],
               stdin=subprocess.DEVNULL)
    wait_port(port, timeout=30)
    check_eq(get(port, f"{label}warm").split()[2], "200", f"{label}: served before the agent")
    agent = Agent("--config", cfg, "--open-port", str(port), "-v")
    ok = False
    for _ in range(150):
        t = agent.stderr_text()
        if f"pid {jvm.pid} (java): agent on" in t:
            ok = True
            break
        threading.Event().wait(0.1)
    check(ok, f"{label}: the plugin loaded its agent into the running JVM")
    line = [l for l in agent.stderr_text().splitlines() if "agent on" in l]
    want_ctx = "request contexts on" if contexts else "request contexts off"
    check(bool(line) and want_ctx in line[0], f"{label}: the log says {want_ctx}")
    ids = [f"{label}{i}" for i in range(N_REQ)]
    back0 = sum(backend.ids.values())
    with concurrent.futures.ThreadPoolExecutor(PAR) as ex:
        answers = list(ex.map(lambda r: get(port, r), ids))
    check_eq(answers, [f"ok {r} 200" for r in ids], f"{label}: {N_REQ} requests ({PAR} at a time) "
             "answered, each after its back-end call")
    check_eq(sum(backend.ids[f"/backend/{r}"] for r in ids), N_REQ,
             f"{label}: back-end calls the back end logged")
    agent.wait_spans(2 * N_REQ, timeout=15,
                     pred=lambda s: any(f"/{k}/{label}" in str(s) for k in ("req", "backend")))
    agent.stop()
    if mode.startswith("v"):
        vt = [l[l.index("virtual threads:"):] for l in agent.stderr_text().splitlines()
              if "virtual threads:" in l]
        print(f"     {label}: java plugin: {vt[0] if vt else '(no counters line)'}")
        check(bool(vt) and "carriers 0," not in vt[0] and "started 0 " not in vt[0],
              f"{label}: carrier key words registered and virtual threads linked")
    served = sum(1 for l in jvm.stderr_text().splitlines()
                 if l.startswith("served id=" + label) and not l.endswith("warm"))
    check_eq(served, N_REQ, f"{label}: requests the server logged")
    res = parenting(agent.spans(), ids)
    print(f"     {label}: client spans own request's child {res[0]}, another's {res[1]}, "
          f"none {res[2]}, missing {res[3]}; server spans {res[4]}")
    check_eq(res[4], N_REQ, f"{label}: SERVER spans")
    jvm.stop()
    return res


def main():
    require_live("java", "javac")
    work = workdir("java_handoff")
    build(work)
    bport = free_port()
    backend = Backend(bport)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    # 0. Without contexts (the host's thread guess): the change's absence.
    r = run_case(work, "java", "pool", "base", False, backend, bport)
    check(r[0] < N_REQ and r[1] == 0,
          f"0: without contexts, calls on another thread are not parented right "
          f"({r[0]} of {N_REQ} right, {r[2]} without parent)")

    # 1. JDK 17.
    for mode in ("pool", "cf", "direct", "dispatcher"):
        r = run_case(work, "java", mode, f"j17{mode}", True, backend, bport)
        check_eq(r[:4], (N_REQ, 0, 0, 0),
                 f"1: JDK 17 {mode}: client spans (own request's child, another's, none, missing)")

    # 2. Temurin 25.
    if os.path.exists(JDK25):
        for mode in ("pool", "cf"):
            r = run_case(work, JDK25, mode, f"j25{mode}", True, backend, bport)
            check_eq(r[:4], (N_REQ, 0, 0, 0),
                     f"2: JDK 25 {mode}: client spans (own request's child, another's, none, "
                     "missing)")
        for mode in ("vthread", "vserver"):
            r = run_case(work, JDK25, mode, f"j25{mode}", True, backend, bport)
            check_eq(r[:4], (N_REQ, 0, 0, 0),
                     f"2: JDK 25 {mode}: client spans (own request's child, another's, none, "
                     "missing)")
    else:
        print(f"     (no {JDK25}: JDK 25 cases not run)")
    backend.shutdown()
    finish()


if __name__ == "__main__":
    main()
