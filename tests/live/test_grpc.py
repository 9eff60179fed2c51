#!/usr/bin/env python3
"""Live: gRPC with real eBPF, both sides of each call watched at once.

Peers (tests/live/grpc_peers/): a python3-grpcio server and client (Debian,
/usr/bin/python3, generic handlers: no protoc) and a @grpc/grpc-js server
(npm, package-lock.json). The service is demo.Echo: Unary, ServerStream,
ClientStream, Bidi; the client makes unary calls, calls failing with chosen
codes, the three streaming kinds, and many concurrent calls on its one
channel. Each server counts the calls it finished per method and status
code, the client counts the calls it made; spans are compared with those
numbers, per method and code, SERVER spans for the server's pid and CLIENT
spans for the client's pid.

1. grpcio server + grpcio client on a channel opened after the agent.
2. A channel opened BEFORE the agent (warm-up calls first): one span per
   call on both sides; methods and codes whose HPACK entries predate the
   agent are unknown (left out, sonde.h2.headers_partial=true), those sent
   afresh (a new method, new error codes) are known, and nothing known is
   ever wrong.
3. A @grpc/grpc-js server with the grpcio client.
Plus: rpc.*.duration histograms (ms) equal the RPC spans, span status per
semconv v1.27.0, and no user data (grpc-message text) in any attribute.

grpc C-core and Node write each HTTP/2 frame as several iovecs of one
sendmsg/writev; the kernel side walks up to 64 of them (to the payload
cap), so their writes are captured whole.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (SRC, Agent, Proc, cannot_run, check, check_eq, fetch, finish, free_port,
                        prom_sum, require_live, wait_port, workdir)

PY = "/usr/bin/python3"  # Debian's python3-grpcio is importable from this one only
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_peers")
NODE_DIR = os.path.join(PEERS, "node")


def check_full(cond, what, why):
    """A check that needs whole writes captured (kept apart for its reason)."""
    check(cond, f"{what}" if cond else f"{what} ({why})")


def span_call(s):
    """(method, code) of a span; None for what is unknown."""
    a = s["attributes"]
    m = a.get("rpc.method")
    if m is None and a.get("url.path", "").startswith("/demo.Echo/"):
        m = a["url.path"].rsplit("/", 1)[1]
    return m, a.get("rpc.grpc.status_code")


def of(spans, kind, pid):
    return [s for s in spans if s["scope"] == "grpc" and s["kind"] == kind
            and s["resource"].get("process.pid") == pid]


def full_counts(spans):
    return collections.Counter(f"{m} {c}" for m, c in map(span_call, spans)
                               if m is not None and c is not None)


def read_json(path, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        time.sleep(0.1)
    raise RuntimeError(f"{path} never appeared")


def plus(a, b):
    c = collections.Counter(a)
    c.update(b)
    return {k: v for k, v in c.items() if v}


def minus(a, b):
    c = collections.Counter(a)
    c.subtract(b)
    return {k: v for k, v in c.items() if v}


def check_common(spans, server_pid, client_pid, label):
    """Semconv status rules, attribute shapes and privacy on every span."""
    server_err = {2, 4, 12, 13, 14, 15}
    bad = []
    for s in spans:
        a = s["attributes"]
        code = a.get("rpc.grpc.status_code")
        want_err = code is not None and (code != 0 if s["kind"] == "CLIENT" else code in server_err)
        if code is not None and (s["status"]["code"] == "ERROR") != want_err:
            bad.append(("status", s["name"], code, s["status"]))
        if "rpc.method" in a and s["name"] != f"{a['rpc.service']}/{a['rpc.method']}":
            bad.append(("name", s["name"]))
        if "rpc.method" in a and a.get("rpc.system") != "grpc":
            bad.append(("rpc.system", s["name"]))
        for v in a.values():
            if isinstance(v, str) and ("purpose" in v or "user data" in v):
                bad.append(("privacy", v))
    check(not bad, f"{label}: span status per semconv v1.27.0, names, no grpc-message text ({bad[:3]})")
    check(all(s["kind"] == "SERVER" for s in spans if s["resource"].get("process.pid") == server_pid)
          and all(s["kind"] == "CLIENT" for s in spans if s["resource"].get("process.pid") == client_pid),
          f"{label}: SERVER spans from the server process, CLIENT spans from the client")


def consistent(spans, made, label):
    """Whatever is known must be true: no more spans per known method, code,
    or (method, code) than calls made with them."""
    by_m, by_c, by_mc = collections.Counter(), collections.Counter(), collections.Counter()
    for k, v in made.items():
        m, c = k.split()
        by_m[m] += v
        by_c[int(c)] += v
        by_mc[(m, int(c))] += v
    sm, sc, smc = collections.Counter(), collections.Counter(), collections.Counter()
    for m, c in map(span_call, spans):
        if m is not None:
            sm[m] += 1
        if c is not None:
            sc[c] += 1
        if m is not None and c is not None:
            smc[(m, c)] += 1
    wrong = [(k, v) for k, v in sm.items() if v > by_m.get(k, 0)]
    wrong += [(k, v) for k, v in sc.items() if v > by_c.get(k, 0)]
    wrong += [(k, v) for k, v in smc.items() if v > by_mc.get(k, 0)]
    check(not wrong, f"{label}: every known method/code is one that was called ({wrong})")


def grpcio_pair(port, pprom, d, pre_existing):
    """Server + client (+ agent watching both); returns (spans, srv, cl, metrics, agent)."""
    stats, out = os.path.join(d, "srv.json"), os.path.join(d, "cl.json")
    for p in (stats, out):
        if os.path.exists(p):
            os.unlink(p)
    server = Proc([PY, os.path.join(PEERS, "grpc_server.py"), str(port), stats])
    wait_port(port)
    args = f"-u 12 -s 3 -c 30 --codes 3,5,13,14 --out {out}"
    if pre_existing:
        client = Proc([PY, os.path.join(PEERS, "grpc_client.py"), str(port), "--wait",
                       "--methods", "Nope"] + args.split(), stdin=subprocess.PIPE)
        end = time.time() + 20
        while "ready" not in client.stderr_text() and time.time() < end:
            time.sleep(0.1)
    else:
        client = Proc(["sh", "-c", f"read go; exec {PY} {PEERS}/grpc_client.py {port} {args}"],
                      stdin=subprocess.PIPE)
    agent = Agent("-v", "--open-port", str(port), "--pid", str(client.pid),
                  "--prometheus-port", str(pprom))
    try:
        client.p.stdin.write(b"go\n")
        client.p.stdin.flush()
        client.p.wait(60)
        cl = read_json(out)
        time.sleep(1.0)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        server.stop()
        srv = read_json(stats)
        time.sleep(0.5)
    finally:
        agent.stop()
        server.stop()
        client.stop()
    return agent.spans(), server.pid, client.pid, srv, cl, metrics, agent


def part_fresh(d):
    port, pprom = free_port(), free_port()
    spans, spid, cpid, srv, cl, metrics, agent = grpcio_pair(port, pprom, d, False)
    ss, cs = of(spans, "SERVER", spid), of(spans, "CLIENT", cpid)
    want_cl = plus(cl["made"], cl["warmup"])
    calls = sum(want_cl.values())
    why = "grpc C-core writes not captured whole"
    check(calls >= 50, f"grpcio: the client made {calls} calls ({want_cl})")
    check_eq(srv, want_cl, "grpcio: the server finished the calls the client made")
    check_common(spans, spid, cpid, "grpcio")
    consistent(ss, srv, "grpcio server spans")
    consistent(cs, want_cl, "grpcio client spans")
    check(len(ss) <= calls and len(cs) <= calls, "grpcio: never more spans than calls")
    check_full(dict(full_counts(ss)) == srv,
               f"grpcio: SERVER spans per method and code == the server's counts "
               f"({len(ss)} spans, {dict(full_counts(ss))})", why)
    check_full(dict(full_counts(cs)) == want_cl,
               f"grpcio: CLIENT spans per method and code == the client's counts "
               f"({len(cs)} spans, {dict(full_counts(cs))})", why)
    rpc_s = sum(1 for s in ss if "rpc.method" in s["attributes"])
    rpc_c = sum(1 for s in cs if "rpc.method" in s["attributes"])
    check_eq(int(prom_sum(metrics, "rpc_server_duration_milliseconds_count")), rpc_s,
             "rpc_server_duration_milliseconds_count == RPC server spans")
    check_eq(int(prom_sum(metrics, "rpc_client_duration_milliseconds_count")), rpc_c,
             "rpc_client_duration_milliseconds_count == RPC client spans")
    # SDK 1.1 counters: a stream is counted as dropped only when it got no
    # span, so never more than the calls without one (both sides)
    dropped = int(prom_sum(metrics, "sonde_h2_dropped_streams_total"))
    losses = int(prom_sum(metrics, "sonde_h2_position_losses_total"))
    check(dropped <= 2 * calls - len(ss) - len(cs),
          f"grpcio: sonde_h2_dropped_streams_total ({dropped}) <= calls without a span "
          f"({2 * calls - len(ss) - len(cs)}); position losses {losses}")
    uni = [s for s in ss if s["name"] == "demo.Echo/Unary"]
    if uni:
        a = uni[0]["attributes"]
        check(a.get("rpc.system") == "grpc" and a.get("rpc.service") == "demo.Echo"
              and a.get("server.port") == port and a.get("client.address"),
              f"grpcio: RPC server span attributes ({a})")
    print(f"     plugin: {[l.strip() for l in agent.err if '[grpc] info' in l]}")


def part_pre_existing(d):
    port, pprom = free_port(), free_port()
    spans, spid, cpid, srv, cl, metrics, agent = grpcio_pair(port, pprom, d, True)
    ss, cs = of(spans, "SERVER", spid), of(spans, "CLIENT", cpid)
    made = cl["made"]
    after = minus(srv, cl["warmup"])
    calls = sum(made.values())
    # the server's handlers never see a call to a method it does not have
    check_eq(plus(after, {"Nope 12": 1}), made,
             "pre-existing channel: the server finished the calls made after the start")
    check_common(spans, spid, cpid, "pre-existing channel")
    # one span per call, on each side: every stream is followed even though
    # the HPACK tables were filled before the agent started
    why = "grpc C-core writes not captured whole"
    check_full(len(ss) == calls, f"pre-existing channel: one SERVER span per call "
                                 f"({len(ss)} spans, {calls} calls)", why)
    check_full(len(cs) == calls, f"pre-existing channel: one CLIENT span per call "
                                 f"({len(cs)} spans, {calls} calls)", why)
    check(len(ss) <= calls and len(cs) <= calls, "pre-existing channel: never more spans than calls")
    consistent(ss, made, "pre-existing channel, server spans")
    consistent(cs, made, "pre-existing channel, client spans")
    for label, side in (("server", ss), ("client", cs)):
        partial = sum(1 for s in side if s["attributes"].get("sonde.h2.headers_partial"))
        nope = [s for s in side if s["name"] == "demo.Echo/Nope"]
        codes = collections.Counter(s["attributes"].get("rpc.grpc.status_code") for s in side)
        check(partial > 0, f"pre-existing channel, {label}: {partial} spans flagged "
                           f"sonde.h2.headers_partial (entries older than the agent)")
        # a method never called before, failing with a code never sent before:
        # its :path and grpc-status are new HPACK literals, so fully known
        check_full(len(nope) == 1 and nope[0]["attributes"].get("rpc.grpc.status_code") == 12,
                   f"pre-existing channel, {label}: the new method is an RPC span with code 12", why)
        check_full(all(codes.get(c, 0) == 1 for c in (3, 5, 13, 14)),
                   f"pre-existing channel, {label}: error codes sent for the first time are "
                   f"known ({dict(codes)})", why)
    # the fields left out are counted (SDK 1.1 counter)
    unknown = int(prom_sum(metrics, "sonde_h2_unknown_header_fields_total"))
    check(unknown > 0, f"pre-existing channel: sonde_h2_unknown_header_fields_total = {unknown} > 0")
    print(f"     plugin: {[l.strip() for l in agent.err if '[grpc] info' in l]}")


def part_node(d):
    if not shutil.which("node"):
        cannot_run("node is not installed")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@grpc", "grpc-js")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", NODE_DIR],
                           capture_output=True, text=True, timeout=300)
        if r.returncode:
            cannot_run("npm ci for @grpc/grpc-js failed: " + r.stderr[-300:])
    port, pprom = free_port(), free_port()
    stats, out = os.path.join(d, "node.json"), os.path.join(d, "ncl.json")
    server = Proc(["node", os.path.join(NODE_DIR, "server.js"), str(port), stats], cwd=NODE_DIR)
    wait_port(port)
    client = Proc(["sh", "-c", f"read go; exec {PY} {PEERS}/grpc_client.py {port} "
                   f"-u 12 -s 3 -c 30 --codes 3,5,13,14 --out {out}"], stdin=subprocess.PIPE)
    agent = Agent("-v", "--open-port", str(port), "--pid", str(client.pid))
    try:
        client.p.stdin.write(b"go\n")
        client.p.stdin.flush()
        client.p.wait(60)
        cl = read_json(out)
        time.sleep(1.0)
        server.stop()
        srv = read_json(stats)
        time.sleep(0.5)
    finally:
        agent.stop()
        server.stop()
        client.stop()
    spans = agent.spans()
    ss, cs = of(spans, "SERVER", server.pid), of(spans, "CLIENT", client.pid)
    want = plus(cl["made"], cl["warmup"])
    why = "Node writev not captured whole"
    check_eq(srv, want, "grpc-js: the server finished the calls the client made")
    check_common(spans, server.pid, client.pid, "grpc-js")
    consistent(ss, srv, "grpc-js server spans")
    check(len(ss) <= sum(srv.values()), "grpc-js: never more spans than calls")
    check_full(dict(full_counts(ss)) == srv,
               f"grpc-js: SERVER spans per method and code == the server's counts "
               f"({len(ss)} spans, {dict(full_counts(ss))})", why)
    check_full(dict(full_counts(cs)) == want,
               f"grpc-js: CLIENT spans (grpcio) per method and code == the client's counts "
               f"({len(cs)} spans)", "grpc C-core writes are captured in part")
    check(all(s["resource"].get("service.name") == "node" for s in ss), "grpc-js spans belong to node")


def main():
    require_live("node", "npm")
    if subprocess.run([PY, "-c", "import grpc"], capture_output=True).returncode:
        cannot_run("python3-grpcio is not importable from /usr/bin/python3")
    d = workdir("grpc")
    part_fresh(d)
    part_pre_existing(d)
    part_node(d)
    finish()


if __name__ == "__main__":
    main()
