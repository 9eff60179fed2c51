#!/usr/bin/env python3
"""Live: the Node.js runtime plugin (plugins/node) on Debian's node.

The server (tests/live/node_peers/server.js) answers GET /req/<id> after
awaiting a timer, then calling a back end over HTTP (node backend.js, the
global keep-alive agent) and Redis (redis-server, `GET sonde:req:<id>` over
a raw socket). Many requests interleave on its one event-loop thread.

  A. The issue's check. The server starts after the agent. 12 requests, 6
     at a time, each on its own connection. Wanted: 12 SERVER spans, 12
     HTTP CLIENT spans and 12 Redis CLIENT spans, one per id, every client
     span the child of its own request's server span. Counted against the
     server's log, the back end's log and Redis's own INFO commandstats.
     The recording (--record) is read too: the key the kernel stamped on
     each request's first bytes equals the key on its back-end and Redis
     writes, and keys differ between requests (the plugin's work, apart
     from the tracer). The inspector the plugin opened is closed again.
  B. A process that ran before the agent (A's server, whose agent has gone:
     a second agent instruments it again): 6 requests, 3 at a time, and two
     requests on one keep-alive connection opened after the attach, each
     parented under its own request. A keep-alive connection opened before
     the attach gets no parent (never a wrong one).
  C. A server that handles SIGUSR1 itself (process.on('SIGUSR1')): one
     clear line, no signal sent (the server never logs "usr1", its
     inspector never opens), and it is still served through the generic
     layer.
  D. HTTPS client calls (OpenSSL inside node, memory BIOs): the back end
     speaks HTTPS and the server reaches it through a pool of two
     keep-alive TLS connections, so requests queue for a connection, the
     first request on each is written by Node after the handshake outside
     any JavaScript, and later ones reuse it. 12 requests, 6 at a time:
     every HTTPS client span the child of its own request.
  E. gRPC-js calls over one shared HTTP/2 channel (the issue's last Node
     gap): the handler makes a unary call /sonde.Ctx/<id> to a grpc-js
     server (node_peers/grpc_echo.js, not watched) through ONE channel,
     connected first (GET /warm: waitForReady). Node flushes the streams of many
     requests from the session's native immediate, outside any request;
     the script reports each stream's key and the grpc plugin takes it.
     12 requests, 6 at a time: every gRPC CLIENT span (rpc.method = its
     request id) the child of its own request's SERVER span. Counted
     against the server's and the gRPC server's logs.
  F. The same through a second channel the first 'f' request creates
     (grpc-js shares E's connection with it, its global subchannel pool):
     grpc-js queues the calls made while the new channel gets ready and
     starts them from the first caller's context; the script gives several
     streams of one key in one session flush no key, so those get no
     parent, never another request's (0 of another's checked; the number
     without a parent is printed, at least the second 6 keyed).
"""
import collections
import http.client
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, finish, free_port,
                        require_live, wait_port, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_peers")
N_REQ = 12
PARALLEL = 6
IDS_A = [chr(ord("a") + i) for i in range(N_REQ)]  # letters: Redis key shapes keep them


def http_get(port, path, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        if conn is None:
            c.close()


def run_parallel(port, ids, parallel):
    failures, lock = [], threading.Lock()
    for i in range(0, len(ids), parallel):
        ts = []
        for rid in ids[i:i + parallel]:
            def one(rid=rid):
                try:
                    st = http_get(port, f"/req/{rid}")
                    if st != 200:
                        raise RuntimeError(f"status {st}")
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        failures.append((rid, repr(e)))
            t = threading.Thread(target=one)
            t.start()
            ts.append(t)
        for t in ts:
            t.join(60)
    return failures


def wait_text(get_text, needle, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if needle in get_text():
            return True
        time.sleep(0.1)
    return False


def node_lines(agent, pid):
    return [l.strip() for l in agent.stderr_text().splitlines()
            if "[node]" in l and f"pid {pid} " in l]


def wait_node_line(agent, pid, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if node_lines(agent, pid):
            return node_lines(agent, pid)[0]
        time.sleep(0.1)
    return ""


def count_lines(text, prefix):
    return sum(1 for l in text.splitlines() if l.startswith(prefix))


def redis_gets(rport):
    out = subprocess.run(["redis-cli", "-p", str(rport), "INFO", "commandstats"],
                         capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"^cmdstat_get:calls=(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def listening_ports(pid):
    """Ports pid listens on (its own sockets, /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for name in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{name}") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if p[3] == "0A" and p[9] in inodes:
                    ports.add(int(p[1].rsplit(":", 1)[1], 16))
    return ports


def client_spans(spans):
    """CLIENT spans by request id: HTTP by url.path, Redis by its key."""
    out = collections.defaultdict(list)
    for s in spans:
        if s.get("kind") != "CLIENT":
            continue
        a = s.get("attributes") or {}
        p = a.get("url.path", "")
        if p.startswith("/backend/"):
            out[("http", p[len("/backend/"):])].append(s)
        elif a.get("db.system.name") == "redis":
            q = a.get("db.query.text", "")
            m = re.match(r"GET sonde:req:(\w+)$", q)
            out[("redis", m.group(1) if m else q)].append(s)
    return out


def server_spans(spans):
    out = collections.defaultdict(list)
    for s in spans:
        p = (s.get("attributes") or {}).get("url.path", "")
        if s.get("kind") == "SERVER" and p.startswith("/req/"):
            out[p[len("/req/"):]].append(s)
    return out


def grpc_parenting(spans, ids):
    """(right, wrong, orphan, missing) for the gRPC CLIENT span of each id."""
    servers = server_spans(spans)
    calls = collections.defaultdict(list)
    for s in spans:
        a = s.get("attributes") or {}
        if s.get("kind") == "CLIENT" and a.get("rpc.service") == "sonde.Ctx":
            calls[a.get("rpc.method", "")].append(s)
    right = wrong = orphan = missing = 0
    for rid in ids:
        cs, ss = calls.get(rid, []), servers.get(rid, [])
        if len(cs) != 1 or len(ss) != 1:
            missing += 1
            print(f"     gRPC call of {rid}: {len(cs)} CLIENT spans, {len(ss)} SERVER spans")
            continue
        c, sv = cs[0], ss[0]
        if c["trace_id"] == sv["trace_id"] and c.get("parent_span_id") == sv["span_id"]:
            right += 1
        elif c.get("parent_span_id"):
            wrong += 1
            print(f"     gRPC call of {rid}: parented elsewhere ({c['parent_span_id']}, "
                  f"its request is {sv['span_id']})")
        else:
            orphan += 1
    return right, wrong, orphan, missing


def ensure_grpc_js():
    d = os.path.join(os.path.dirname(PEERS), "grpc_peers", "node")
    if os.path.isdir(os.path.join(d, "node_modules", "@grpc", "grpc-js")):
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", d],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        cannot_run("npm ci for @grpc/grpc-js failed: " + r.stderr[-300:])


def check_parenting(spans, ids, kinds, label):
    servers, clients = server_spans(spans), client_spans(spans)
    check_eq(sorted(k for k in servers if k in ids), sorted(ids), f"{label}: a SERVER span per id")
    check_eq(sum(len(servers[i]) for i in ids), len(ids), f"{label}: SERVER spans")
    right = wrong = orphan = missing = 0
    for kind in kinds:
        for rid in ids:
            cs = clients.get((kind, rid), [])
            if len(cs) != 1 or len(servers.get(rid, [])) != 1:
                missing += 1
                continue
            s, c = servers[rid][0], cs[0]
            if c["trace_id"] == s["trace_id"] and c["parent_span_id"] == s["span_id"]:
                right += 1
            elif c.get("parent_span_id"):
                wrong += 1
                print(f"     {kind} call of {rid}: parented elsewhere ({c['parent_span_id']}, "
                      f"its request is {s['span_id']})")
            else:
                orphan += 1
                print(f"     {kind} call of {rid}: no parent")
    n = len(ids) * len(kinds)
    check_eq((right, wrong, orphan, missing), (n, 0, 0, 0),
             f"{label}: {'+'.join(kinds)} client spans (own request's child, another's, none, "
             f"missing)")


# --- the recording --------------------------------------------------------------------

def read_recording(path):
    with open(path, "rb") as f:
        magic, ver, size, _ = struct.unpack("<8sIIq", f.read(24))
        if magic != b"SONDEREC" or ver < 2:
            raise RuntimeError(f"recording {magic!r} version {ver}: contexts need version 2")
        f.seek(size)
        while True:
            b = f.read(4)
            if len(b) < 4:
                return
            (n,) = struct.unpack("<I", b)
            yield f.read(n)


def recorded_keys(path, pid):
    """For each id: the key on the request's first bytes, on its back-end
    write and on its Redis write (host DATA records of the server)."""
    req, call, red = {}, {}, {}
    for r in read_recording(path):
        typ, tgid = struct.unpack_from("<II", r, 0)
        if typ != 1 or tgid != pid:
            continue
        _, _, ln, cap, d, src = struct.unpack_from("<QQIIBB", r, 24)
        (ctx,) = struct.unpack_from("<Q", r, 56)
        data = r[64:64 + cap]
        m = re.match(rb"GET /req/(\w+) ", data)
        if d == 0 and m:
            req[m.group(1).decode()] = ctx
        m = re.match(rb"GET /backend/(\w+) ", data)
        if d == 1 and m:
            call[m.group(1).decode()] = ctx
        m = re.search(rb"\$\d+\r\nsonde:req:(\w+)\r\n", data)
        if d == 1 and m:
            red[m.group(1).decode()] = ctx
    return req, call, red


def check_recording(path, pid, ids):
    req, call, red = recorded_keys(path, pid)
    check_eq(sorted(k for k in req if k in ids), sorted(ids), "A: recording: a request read per id")
    good = [i for i in ids if req.get(i) and req.get(i) == call.get(i) == red.get(i)]
    for i in sorted(set(ids) - set(good)):
        print(f"     id {i}: request read with key {req.get(i)}, back-end write {call.get(i)}, "
              f"Redis write {red.get(i)}")
    check_eq(len(good), len(ids),
             "A: recording: each request's back-end and Redis writes carry its key")
    check_eq(len({req[i] for i in ids if i in req}), len(ids), "A: recording: keys differ by request")


# --- scenarios ---------------------------------------------------------------------------

def main():
    require_live("node", "redis-server", "redis-cli", "openssl")
    work = workdir("node-ctx")
    cfg = os.path.join(work, "sonde.yaml")
    with open(cfg, "w") as f:
        f.write("plugins:\n  redis: { query_text: true }\n")
    bport, rport, port = free_port(), free_port(), free_port()
    backend = Proc(["node", os.path.join(PEERS, "backend.js"), str(bport)])
    redis = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", work])
    wait_port(bport)
    wait_port(rport)

    # --- A: the check ----------------------------------------------------
    rec = os.path.join(work, "a.sonde")
    agent = Agent("--config", cfg, "--open-port", str(port), "-v", "--record", rec)
    srv = Proc(["node", os.path.join(PEERS, "server.js"), str(port), str(bport), str(rport), "150"])
    wait_port(port)
    line = wait_node_line(agent, srv.pid)
    print("     " + line)
    check("request contexts on" in line, "A: the plugin instrumented the server started after it")
    check_eq(listening_ports(srv.pid), {port}, "A: the inspector it opened is closed again")
    gets0, back0 = redis_gets(rport), count_lines(backend.stderr_text(), "backend id=")
    fails = run_parallel(port, IDS_A, PARALLEL)
    check_eq(fails, [], "A: every request answered 200")
    agent.wait_spans(3 * N_REQ, timeout=20,
                     pred=lambda s: "/req/" in str(s) or "sonde:req:" in str(s) or "/backend/" in str(s))
    time.sleep(0.5)
    agent.stop()
    log = srv.stderr_text()
    check_eq(count_lines(log, "served id="), N_REQ, "A: requests the server logged")
    check_eq(count_lines(backend.stderr_text(), "backend id=") - back0, N_REQ,
             "A: calls the back end logged")
    check_eq(redis_gets(rport) - gets0, N_REQ, "A: GETs in Redis's INFO commandstats")
    check_eq(count_lines(log, "usr1"), 0, "A: nothing reached an application signal handler")
    check_parenting(agent.spans(), IDS_A, ("http", "redis"), "A")
    check_recording(rec, srv.pid, IDS_A)
    tail = [l for l in agent.stderr_text().splitlines() if "[node]" in l and "processes" in l]
    print("     " + (tail[-1].strip() if tail else "(no totals line)"))
    check(tail and "bad records 0" in tail[-1] and ", 0 unreadable" in tail[-1],
          "A: no bad record, no unreadable key")

    # --- B: a process that ran before the agent ------------------------------------
    # A keep-alive connection opened while no agent watches it.
    early = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    check_eq(http_get(port, "/req/earlyone", early), 200, "B: a request before the agent")
    agent = Agent("--config", cfg, "--open-port", str(port), "-v")
    line = wait_node_line(agent, srv.pid)
    print("     " + line)
    check("request contexts on" in line, "B: the plugin instrumented a server that ran before it")
    check_eq(listening_ports(srv.pid), {port}, "B: the inspector is closed again")
    ids_b = ["ba", "bb", "bc", "bd", "be", "bf"]
    fails = run_parallel(port, ids_b, 3)
    check_eq(fails, [], "B: requests answered")
    ka = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for rid in ("kaone", "katwo"):
        check_eq(http_get(port, f"/req/{rid}", ka), 200, f"B: keep-alive request {rid}")
    ka.close()
    check_eq(http_get(port, "/req/earlytwo", early), 200, "B: a request on the early connection")
    early.close()
    agent.wait_spans(3 * (len(ids_b) + 3), timeout=20)
    time.sleep(0.5)
    agent.stop()
    spans = agent.spans()
    check_parenting(spans, ids_b + ["kaone", "katwo"], ("http", "redis"), "B")
    srv_b = server_spans(spans)
    check(len(srv_b.get("kaone", [])) == 1 and len(srv_b.get("katwo", [])) == 1 and
          srv_b["kaone"][0]["trace_id"] != srv_b["katwo"][0]["trace_id"],
          "B: two requests on one keep-alive connection are two traces")
    early_calls = client_spans(spans).get(("http", "earlytwo"), [])
    parents = {s["span_id"] for v in srv_b.values() for s in v}
    check(len(early_calls) == 1 and early_calls[0].get("parent_span_id", "") not in parents - {""},
          "B: the connection opened before the attach gets no parent, never a wrong one")
    srv.stop()

    # --- C: an application that handles SIGUSR1 itself -----------------------------
    port_c = free_port()
    srv_c = Proc(["node", os.path.join(PEERS, "server.js"), str(port_c), str(bport), str(rport),
                  "20", "--own-usr1"])
    wait_port(port_c)
    agent = Agent("--open-port", str(port_c), "-v")
    line = wait_node_line(agent, srv_c.pid)
    print("     " + line)
    ids_c = ["ca", "cb", "cc"]
    for rid in ids_c:
        check_eq(http_get(port_c, f"/req/{rid}"), 200, f"C: request {rid}")
    agent.wait_spans(len(ids_c), timeout=15, pred=lambda s: s.get("kind") == "SERVER")
    time.sleep(0.5)
    agent.stop()
    lines = node_lines(agent, srv_c.pid)
    check_eq(len(lines), 1, "C: exactly one line about the server")
    check(lines and "handles SIGUSR1 itself" in lines[0] and "generic layer" in lines[0],
          "C: it says the application handles SIGUSR1 and the generic layer stays")
    log = srv_c.stderr_text()
    check_eq(count_lines(log, "usr1"), 0, "C: the application's SIGUSR1 handler never ran")
    check("Debugger" not in log, "C: its inspector never opened")
    check_eq(count_lines(log, "served id="), len(ids_c), "C: requests the server logged")
    check_eq(len([i for i in ids_c if len(server_spans(agent.spans()).get(i, [])) == 1]),
             len(ids_c), "C: SERVER spans through the generic layer")
    srv_c.stop()

    # --- D: HTTPS calls through a pool of keep-alive TLS connections ------------------
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
    if r.returncode != 0:
        cannot_run("openssl cannot make a self-signed certificate")
    tport, port_d = free_port(), free_port()
    tls_back = Proc(["node", os.path.join(PEERS, "backend.js"), str(tport), "--tls", cert, key])
    wait_port(tport)
    agent = Agent("--open-port", str(port_d), "-v")
    srv_d = Proc(["node", os.path.join(PEERS, "server.js"), str(port_d), str(tport), "0", "60",
                  "--tls-backend"])
    wait_port(port_d)
    line = wait_node_line(agent, srv_d.pid)
    print("     " + line)
    check("request contexts on" in line and "TLS writes keyed" in line,
          "D: instrumented, TLS writes keyed")
    ids_d = ["d" + c for c in "abcdefghijkl"]
    fails = run_parallel(port_d, ids_d, PARALLEL)
    check_eq(fails, [], "D: requests answered")
    agent.wait_spans(2 * len(ids_d), timeout=20)
    time.sleep(0.5)
    agent.stop()
    check_eq(count_lines(srv_d.stderr_text(), "served id="), len(ids_d), "D: requests the server logged")
    check_eq(count_lines(tls_back.stderr_text(), "backend id="), len(ids_d),
             "D: calls the HTTPS back end logged")
    spans = agent.spans()
    https_calls = [s for s in spans if s.get("kind") == "CLIENT" and
                   (s.get("attributes") or {}).get("url.scheme") == "https"]
    check_eq(len(https_calls), len(ids_d), "D: https CLIENT spans")
    check_parenting(spans, ids_d, ("http",), "D")
    srv_d.stop()
    tls_back.stop()

    # --- E, F: gRPC-js calls over one shared HTTP/2 channel ---------------------------
    ensure_grpc_js()
    gport, port_e = free_port(), free_port()
    gsrv = Proc(["node", os.path.join(PEERS, "grpc_echo.js"), str(gport)])
    wait_port(gport)
    agent = Agent("--open-port", str(port_e), "-v")
    srv_e = Proc(["node", os.path.join(PEERS, "server.js"), str(port_e), "0", "0", "60",
                  "--grpc", str(gport)])
    wait_port(port_e)
    line = wait_node_line(agent, srv_e.pid)
    print("     " + line)
    check("request contexts on" in line, "E: instrumented")
    check_eq(http_get(port_e, "/warm"), 200, "E: the shared channel connected")
    ids_e = ["e" + c for c in "abcdefghijkl"]
    ids_f = ["f" + c for c in "abcdefghijkl"]
    check_eq(run_parallel(port_e, ids_e, PARALLEL), [], "E: requests answered")
    check_eq(run_parallel(port_e, ids_f, PARALLEL), [], "F: requests answered")
    agent.wait_spans(2 * (len(ids_e) + len(ids_f)), timeout=20)
    time.sleep(0.5)
    agent.stop()
    log_e, log_g = srv_e.stderr_text(), gsrv.stderr_text()
    check_eq(count_lines(log_e, "served id=e") + count_lines(log_e, "served id=f"),
             len(ids_e) + len(ids_f), "E+F: requests the server logged")
    check_eq(count_lines(log_g, "grpc id="), len(ids_e) + len(ids_f),
             "E+F: calls the gRPC server logged")
    spans = agent.spans()
    re_, we, oe, me = grpc_parenting(spans, ids_e)
    print(f"     E: gRPC CLIENT spans: {re_} own request's child, {we} another's, {oe} none, "
          f"{me} missing")
    check_eq((re_, we, oe, me), (len(ids_e), 0, 0, 0),
             "E: gRPC client spans over one connected channel (own request's child, another's, "
             "none, missing)")
    rf, wf, of, mf = grpc_parenting(spans, ids_f)
    print(f"     F: gRPC CLIENT spans: {rf} own request's child, {wf} another's, {of} none, "
          f"{mf} missing")
    check_eq((wf, mf), (0, 0), "F: a channel opened by the first request: another's, missing")
    check(rf >= PARALLEL, f"F: the calls made once it is connected are keyed ({rf} >= {PARALLEL})")
    h2line = [l for l in agent.err if "HTTP/2 client streams keyed" in l]
    if h2line:
        print("     " + h2line[-1].strip()[-260:])
    srv_e.stop()
    gsrv.stop()

    backend.stop()
    redis.stop()
    finish()


if __name__ == "__main__":
    main()
