#!/usr/bin/env python3
"""Live: the Go runtime plugin (plugins/go) on programs built now with
Debian's go (crypto/tls, net/http; tests/live/go_peers).

  A. The issue's check. A Go HTTPS server (crypto/tls, not OpenSSL) started
     after the agent; each handler sleeps, then calls a Go back end with
     net/http over plain HTTP (even ids from a goroutine the handler starts).
     12 requests, 6 at a time, one TLS connection each. Wanted: 12 https
     SERVER spans and 12 CLIENT spans, one per id, and every client span the
     child of its own request's server span (same trace, parent = that
     server span). Counted against the server's and the back end's own logs.
     The recording (--record) is read too: the request each back-end call
     was made for is found from the plugin's own records alone (plaintext
     records, goroutine links, the contexts the kernel stamped on the
     socket writes), which checks the plugin apart from the tracer.
  B. Attach without restart: the same server started before the agent,
     requests on new connections after it attached.
  C. A stripped server (-ldflags="-s -w", plain HTTP): one clear log line
     from the plugin, and its HTTP spans still come through the generic
     layer.
"""
import collections
import os
import shutil
import ssl
import struct
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, finish, free_port,
                        require_live, wait_port, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go_peers")
N_REQ = 12
PARALLEL = 6


def go_env(work):
    e = dict(os.environ)
    e.update({"GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off", "GOTOOLCHAIN": "local",
              "GOCACHE": os.path.join(work, "gocache"), "GOPATH": os.path.join(work, "gopath"),
              "HOME": work})
    return e


def go_build(work, peer, out, *flags):
    path = os.path.join(work, out)
    r = subprocess.run(["go", "build", *flags, "-o", path, os.path.join(PEERS, peer, "main.go")],
                       cwd=work, env=go_env(work), capture_output=True, text=True)
    if r.returncode != 0:
        cannot_run(f"go build {peer} failed: {r.stderr[-400:]}")
    return path


def https_get(port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, body
    finally:
        c.close()


def https_keepalive(port, paths):
    """Several requests on one TLS connection, one after the other."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    try:
        for p in paths:
            c.request("GET", p)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                return r.status, b""
        return 200, b""
    finally:
        c.close()


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def run_parallel(fn, ids, parallel):
    """fn(id) for every id, `parallel` at a time (waves). Returns failures."""
    failures = []
    lock = threading.Lock()
    for i in range(0, len(ids), parallel):
        wave = ids[i:i + parallel]
        ts = []
        for rid in wave:
            def one(rid=rid):
                try:
                    st, _ = fn(rid)
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


def wait_log(proc_or_agent, needle, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if needle in proc_or_agent.stderr_text():
            return True
        time.sleep(0.1)
    return False


def count_lines(text, prefix):
    return sum(1 for l in text.splitlines() if l.startswith(prefix))


def by_path(spans, kind, prefix):
    out = collections.defaultdict(list)
    for s in spans:
        p = (s.get("attributes") or {}).get("url.path", "")
        if s.get("kind") == kind and p.startswith(prefix):
            out[p[len(prefix):]].append(s)
    return out


def check_parenting(spans, ids, label):
    """One https SERVER span and one CLIENT span per id; the client span is
    the child of its own request's server span."""
    servers = by_path(spans, "SERVER", "/req/")
    clients = by_path(spans, "CLIENT", "/backend/")
    check_eq(sorted(servers), sorted(ids), f"{label}: one SERVER span per request id")
    check_eq(sum(len(v) for v in servers.values()), len(ids), f"{label}: SERVER spans")
    check_eq(sum(len(v) for v in clients.values()), len(ids), f"{label}: CLIENT spans")
    check_eq(sorted(clients), sorted(ids), f"{label}: one CLIENT span per back-end call")
    https = [s for v in servers.values() for s in v
             if (s.get("attributes") or {}).get("url.scheme") == "https"]
    check_eq(len(https), len(ids), f"{label}: SERVER spans with url.scheme=https")
    right = wrong = orphan = 0
    for rid in ids:
        if len(servers.get(rid, [])) != 1 or len(clients.get(rid, [])) != 1:
            continue
        s, c = servers[rid][0], clients[rid][0]
        if c["trace_id"] == s["trace_id"] and c["parent_span_id"] == s["span_id"]:
            right += 1
        elif c["parent_span_id"]:
            wrong += 1
            print(f"     id {rid}: client span parented elsewhere (trace {c['trace_id'][:8]}, "
                  f"parent {c['parent_span_id']}; its request: trace {s['trace_id'][:8]}, "
                  f"span {s['span_id']})")
        else:
            orphan += 1
    check_eq((right, wrong, orphan), (len(ids), 0, 0),
             f"{label}: client spans (child of own request, of another, of none)")
    names = [s.get("name", "") for s in spans]
    check(all(n.startswith("GET ") for n in names),
          f"{label}: every span is a parsed GET (none from ciphertext): {sorted(set(names))}")


# --- the recording: what the plugin and the kernel said, record by record --------

def read_recording(path):
    """Yield (type, tgid, tid, fd, fields, payload) for DATA records of the
    host (type 1) and of the plugin (its three claimed types)."""
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
            r = f.read(n)
            typ, tgid, tid, fd, _ = struct.unpack_from("<IIIIQ", r)
            yield typ, tgid, tid, fd, r


def contexts_from_recording(path, pid, rec_base):
    """For each request id: the context of the plugin's plaintext record that
    carried "GET /req/<id>", and the context the kernel stamped on the socket
    write of "GET /backend/<id>"; plus the goroutine links."""
    req_ctx, call_ctx, parent = {}, {}, {}
    for typ, tgid, tid, fd, r in read_recording(path):
        if tgid != pid:
            continue
        if typ == 1:  # host DATA: sonde_ev_data (64 bytes, then the payload)
            _, _, ln, cap, d, src = struct.unpack_from("<QQIIBB", r, 24)
            (ctx,) = struct.unpack_from("<Q", r, 56)
            data = r[64:64 + cap]
            if d == 1 and src == 0 and data.startswith(b"GET /backend/"):
                rid = data[13:].split(b" ")[0].decode()
                call_ctx[rid] = ctx
        elif typ == rec_base:  # go_rec_data (72 bytes, then the payload)
            _, ctx, _, _, ln, cap, d = struct.unpack_from("<QQQQIIB", r, 24)
            data = r[72:72 + cap]
            if d == 0 and data.startswith(b"GET /req/"):
                rid = data[9:].split(b" ")[0].split(b"?")[0].decode()
                req_ctx[rid] = ctx
        elif typ == rec_base + 1:
            goid, par = struct.unpack_from("<QQ", r, 24)
            parent[goid] = par
    return req_ctx, call_ctx, parent


def is_within(ctx, top, parent):
    for _ in range(64):
        if ctx == top:
            return True
        if ctx not in parent:
            return False
        ctx = parent[ctx]
    return False


def check_recorded_contexts(path, pid, rec_base, ids):
    req_ctx, call_ctx, parent = contexts_from_recording(path, pid, rec_base)
    check_eq(sorted(req_ctx), sorted(ids), "recording: a plaintext request record per id")
    check_eq(sorted(call_ctx), sorted(ids), "recording: a back-end socket write per id")
    ok = [rid for rid in ids
          if rid in req_ctx and rid in call_ctx and req_ctx[rid]
          and is_within(call_ctx[rid], req_ctx[rid], parent)]
    bad = sorted(set(ids) - set(ok))
    for rid in bad:
        print(f"     id {rid}: request read in context {req_ctx.get(rid)}, back-end call "
              f"written in context {call_ctx.get(rid)}")
    check_eq(len(ok), len(ids),
             "recording: each back-end call written in its own request's goroutine "
             "(or one it started)")


def plugin_line(agent, pid):
    for l in agent.stderr_text().splitlines():
        if "[go]" in l and f"pid {pid} " in l:
            return l
    return ""


def rec_base_of(line):
    # "... records 1100..1102"
    for w in line.replace(",", " ").replace(";", " ").split():
        if ".." in w and w.split("..")[0].isdigit():
            return int(w.split("..")[0])
    return None


def go_totals(agent):
    """The plugin's totals line (printed at exit), shown in the test log."""
    tail = [l for l in agent.stderr_text().splitlines() if "[go]" in l and "plaintext records" in l]
    print("     " + (tail[-1].strip() if tail else "(no totals line)"))
    return tail[-1] if tail else ""


def main():
    require_live("openssl")
    if not shutil.which("go"):
        cannot_run("Debian's go (golang-go) is not installed")
    work = workdir("go")
    server_bin = go_build(work, "tlsserver", "tlsserver")
    stripped_bin = go_build(work, "tlsserver", "tlsserver_stripped", "-ldflags=-s -w")
    backend_bin = go_build(work, "backend", "backend")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
    if r.returncode != 0:
        cannot_run("openssl cannot make a self-signed certificate")

    bport = free_port()
    backend = Proc([backend_bin, "-addr", f"127.0.0.1:{bport}"])
    wait_port(bport)
    burl = f"http://127.0.0.1:{bport}"

    # --- A: the check ---------------------------------------------
    port = free_port()
    rec = os.path.join(work, "a.sonde")
    agent = Agent("--open-port", str(port), "-v", "--record", rec)
    srv = Proc([server_bin, "-addr", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                "-backend", burl, "-sleep", "150ms"])
    wait_port(port)
    attached = wait_log(agent, f"pid {srv.pid} (tlsserver): go")
    check(attached, "A: the plugin instrumented the Go server started after the agent")
    line = plugin_line(agent, srv.pid)
    print("     " + line.strip())
    ids = [str(i) for i in range(1, N_REQ + 1)]
    fails = run_parallel(lambda rid: https_get(port, f"/req/{rid}" +
                                                  ("?spawn=1" if int(rid) % 2 == 0 else "")),
                         ids, PARALLEL)
    check_eq(fails, [], "A: every HTTPS request answered 200")
    agent.wait_spans(2 * N_REQ, timeout=15)
    time.sleep(0.5)
    agent.stop()
    srv_log = srv.stderr_text()
    srv.stop()
    check_eq(count_lines(srv_log, "served id="), N_REQ, "A: requests the server logged")
    check_eq(count_lines(srv_log, "backend id="), N_REQ, "A: back-end calls the server logged")
    check_parenting(agent.spans(), ids, "A")
    base = rec_base_of(line)
    if base is None:
        check(False, "A: the plugin's log line names its record types")
    else:
        check_recorded_contexts(rec, srv.pid, base, ids)
    tail = go_totals(agent)
    check("no connection 0," in tail and "bad records 0" in tail,
          "A: no plaintext without its connection, no bad record")

    # --- A2: the same on keep-alive connections (6 connections x 2 requests):
    # between requests net/http reads the socket from another goroutine
    # (backgroundRead), which may take the next request's first bytes.
    port = free_port()
    agent = Agent("--open-port", str(port), "-v")
    srv = Proc([server_bin, "-addr", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                "-backend", burl, "-sleep", "100ms"])
    wait_port(port)
    check(wait_log(agent, f"pid {srv.pid} (tlsserver): go"), "A2: instrumented")
    pairs = [(f"k{i}a", f"k{i}b") for i in range(1, PARALLEL + 1)]
    fails = run_parallel(lambda pr: https_keepalive(port, [f"/req/{pr[0]}", f"/req/{pr[1]}?spawn=1"]),
                         pairs, PARALLEL)
    check_eq(fails, [], "A2: every keep-alive request answered 200")
    ids_k = [x for pr in pairs for x in pr]
    agent.wait_spans(2 * len(ids_k), timeout=15)
    agent.stop()
    srv_log = srv.stderr_text()
    srv.stop()
    check_eq(count_lines(srv_log, "served id="), len(ids_k), "A2: requests the server logged")
    check_parenting(agent.spans(), ids_k, "A2")
    go_totals(agent)

    # --- B: attach to a running Go server -------------------------------------
    port = free_port()
    srv = Proc([server_bin, "-addr", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                "-backend", burl, "-sleep", "50ms"])
    wait_port(port)
    https_get(port, "/req/before")  # traffic before the agent exists
    # A keep-alive connection opened before the agent: its server goroutine
    # is already blocked in (*tls.Conn).Read when the probes are attached.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    early = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    early.request("GET", "/req/early0")
    early.getresponse().read()
    agent = Agent("--open-port", str(port), "-v")
    check(wait_log(agent, f"pid {srv.pid} (tlsserver): go"),
          "B: the plugin instrumented a Go server that ran before the agent")
    ids_b = [f"b{i}" for i in range(1, 5)]
    fails = run_parallel(lambda rid: https_get(port, f"/req/{rid}"), ids_b, 2)
    check_eq(fails, [], "B: requests answered")
    for rid in ("early1", "early2"):
        early.request("GET", f"/req/{rid}")
        r = early.getresponse()
        r.read()
        check_eq(r.status, 200, f"B: request {rid} on the connection opened before the agent")
    early.close()
    agent.wait_spans(2 * len(ids_b) + 4, timeout=15)
    agent.stop()
    srv.stop()
    go_totals(agent)
    check_parenting([s for s in agent.spans()
                     if (s.get("attributes") or {}).get("url.path", "").rsplit("/", 1)[-1]
                     .startswith("b")], ids_b, "B")
    check_parenting([s for s in agent.spans()
                     if "early" in (s.get("attributes") or {}).get("url.path", "")],
                    ["early1", "early2"], "B (connection opened before the agent)")

    # --- C: a stripped Go binary: one clear line, the generic layer -------------
    port = free_port()
    agent = Agent("--open-port", str(port), "-v")
    srv = Proc([stripped_bin, "-addr", f"127.0.0.1:{port}", "-backend", burl, "-sleep", "20ms"])
    wait_port(port)
    wait_log(agent, f"pid {srv.pid}", timeout=10)
    ids_c = [f"c{i}" for i in range(1, 5)]
    for rid in ids_c:
        st, _ = http_get(port, f"/req/{rid}")
        check_eq(st, 200, f"C: plain HTTP request {rid}")
    agent.wait_spans(2 * len(ids_c), timeout=15)
    agent.stop()
    srv_log = srv.stderr_text()
    srv.stop()
    go_lines = [l for l in agent.stderr_text().splitlines()
                if "[go]" in l and f"pid {srv.pid}" in l]
    for l in go_lines:
        print("     " + l.strip())
    check_eq(len(go_lines), 1, "C: exactly one log line about the stripped binary")
    check(go_lines and "stripped" in go_lines[0] and "generic layer" in go_lines[0],
          "C: the line says it is stripped and stays with the generic layer")
    spans = agent.spans()
    check_eq(len(by_path(spans, "SERVER", "/req/")), len(ids_c),
             "C: SERVER spans of the stripped server (generic layer)")
    check_eq(sum(len(v) for v in by_path(spans, "CLIENT", "/backend/").values()), len(ids_c),
             "C: CLIENT spans of the stripped server (generic layer)")
    check_eq(count_lines(srv_log, "served id="), len(ids_c), "C: requests the server logged")

    backend.stop()
    finish()


if __name__ == "__main__":
    main()
