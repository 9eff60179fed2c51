#!/usr/bin/env python3
"""Live: traceparent injection (services[].inject_traceparent).

A back end that nobody watches records the raw bytes of every request it
receives. A Python client, watched with injection on, sends keep-alive
GETs, GETs on new connections, a 256 KiB POST, a request that already
carries a traceparent, and two requests pipelined in one write. The same
client runs again with injection off. Wanted:

  - every plain request (on) has exactly one traceparent line, right after
    the request line, in the W3C format; with that line taken out, the
    request is byte for byte what the client sent with injection off
    (bodies included);
  - the client span sonde exports for the request has the injected trace
    id and span id (so the back end's side, watched or not, continues it);
  - the request that carried a traceparent and the pipelined pair arrive
    unchanged; injection off changes nothing at all;
  - sonde_traceparent_injected_total counts the insertions.

Then a serving front end (watched, injection on) calls the back end for
every request it serves, once after 5 ms of work and once at once: an injected traceparent must carry the front
end's server span trace and name its client span as parent; requests sent
before the agent knew what the thread served are left alone and counted
(sonde_traceparent_no_context_total), never given a wrong parent.
"""
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, fetch, finish, free_port, prom_sum,
                        require_live, wait_port, workdir)

# Records every request's raw bytes (head and body, framed by
# Content-Length) as JSON lines; answers each with a short 200.
RECORDER = r'''
import json, socket, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def serve(c):
    buf = b""
    f = open(out, "a")
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v.strip())
        while len(rest) < clen:
            d = c.recv(65536)
            if not d:
                return
            rest += d
        req, buf = head + b"\r\n\r\n" + rest[:clen], rest[clen:]
        with lock:
            f.write(json.dumps({"raw": req.decode("latin-1")}) + "\n")
            f.flush()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

# The watched client: waits for its go file, then sends its requests.
CLIENT = r'''
import http.client, os, socket, sys, time
port, go = int(sys.argv[1]), sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.05)
k = http.client.HTTPConnection("127.0.0.1", port)
for i in range(10):
    k.request("GET", "/k/%d" % i)
    assert k.getresponse().read() == b"ok"
for i in range(5):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/n/%d" % i)
    assert c.getresponse().read() == b"ok"
    c.close()
body = bytes((i * 7 + 3) % 251 for i in range(256 * 1024))
k.request("POST", "/post/big", body=body, headers={"Content-Type": "application/octet-stream"})
assert k.getresponse().read() == b"ok"
k.request("GET", "/k/after-post")
assert k.getresponse().read() == b"ok"
k.request("GET", "/has-tp", headers={
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
assert k.getresponse().read() == b"ok"
k.close()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /pipe/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /pipe/2 HTTP/1.1\r\nHost: x\r\n\r\n")
got = b""
while got.count(b"ok") < 2:
    d = s.recv(4096)
    if not d:
        break
    got += d
s.close()
open(go + ".done", "w").close()
time.sleep(30)
'''

FRONT = r'''
import http.client, http.server, sys, threading, time
back, work = int(sys.argv[2]), float(sys.argv[3])
local = threading.local()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        rid = self.path.rsplit("/", 1)[-1]
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = http.client.HTTPConnection("127.0.0.1", back)
        time.sleep(work)   # what it does before it calls out
        c.request("GET", "/b/" + rid)
        got = c.getresponse().read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(got)))
        self.end_headers()
        self.wfile.write(got)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

TP = re.compile(rb"^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def records(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                out.append(json.loads(line)["raw"].encode("latin-1"))
    return out


def path_of(raw):
    return raw.split(b"\r\n", 1)[0].split(b" ")[1].decode()


def split_tp(raw):
    """(request without injected line, [(trace, span)] of traceparent lines,
    index of the first one among the header lines)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    tps, keep, first = [], [], None
    for i, l in enumerate(lines):
        m = TP.match(l)
        if m:
            tps.append((m.group(1).decode(), m.group(2).decode()))
            first = i if first is None else first
        else:
            keep.append(l)
    return b"\r\n".join(keep) + sep + body, tps, first


def run_client(d, inject, pb):
    prom = free_port()
    out = os.path.join(d, f"recv-{inject}.jsonl")
    go = os.path.join(d, f"go-{inject}")
    back = Proc([sys.executable, os.path.join(d, "recorder.py"), str(pb), out])
    client = Proc([sys.executable, os.path.join(d, "client.py"), str(pb), go])
    wait_port(pb)
    cfg = os.path.join(d, f"sonde-{inject}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""services:
  - name: client
    pids: [{client.pid}]
    inject_traceparent: {"true" if inject else "false"}
export:
  prometheus: {{ port: {prom} }}
""")
    agent = Agent("--config", cfg)
    metrics = ""
    try:
        time.sleep(0.5)
        open(go, "w").close()
        end = time.time() + 20
        while not os.path.exists(go + ".done") and time.time() < end:
            time.sleep(0.1)
        check(os.path.exists(go + ".done"), f"inject={inject}: the client finished its requests")
        agent.wait_spans(20, timeout=10, pred=lambda s: s["kind"] == "CLIENT")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{prom}/metrics")
    finally:
        agent.stop()
        client.stop()
        back.stop()
    return records(out), agent, metrics


def part_client():
    d = workdir("inject")
    with open(os.path.join(d, "recorder.py"), "w") as f:
        f.write(RECORDER)
    with open(os.path.join(d, "client.py"), "w") as f:
        f.write(CLIENT)
    pb = free_port()  # the same port twice: the Host headers are the same
    off, agent_off, m_off = run_client(d, False, pb)
    on, agent_on, m_on = run_client(d, True, pb)
    check_eq(len(off), 20, "injection off: the back end got all 20 requests")
    check_eq(len(on), 20, "injection on: the back end got all 20 requests")
    check("sonde_traceparent_injected_total" not in m_off,
          "injection off: no injection metrics (the programs are not even loaded)")
    for raw in off:
        check_eq(split_tp(raw)[1] if path_of(raw) != "/has-tp" else [], [],
                 f"injection off: {path_of(raw)} carries no traceparent")
    by_off = {path_of(r): r for r in off}
    plain = [p for p in by_off if p not in ("/has-tp", "/pipe/1", "/pipe/2")]
    clients = {}
    for s in agent_on.spans():
        if s["kind"] == "CLIENT":
            clients.setdefault(s["attributes"].get("url.path"), []).append(s)
    injected = 0
    for raw in on:
        p = path_of(raw)
        stripped, tps, first = split_tp(raw)
        if p not in plain:
            check_eq(raw, by_off.get(p), f"{p}: arrives unchanged")
            continue
        ok = len(tps) == 1 and first == 1 and stripped == by_off.get(p)
        check(ok, f"{p}: one traceparent right after the request line, the rest byte-exact "
                  f"({len(tps)} found at line {first}, {len(raw)} bytes)")
        if not tps:
            continue
        injected += 1
        tid, sid = tps[0]
        cs = clients.get(p, [])
        check(len(cs) == 1 and cs[0]["trace_id"] == tid and cs[0]["span_id"] == sid,
              f"{p}: the exported client span has the injected ids")
    big = [r for r in on if path_of(r) == "/post/big"]
    if big:
        body = big[0].partition(b"\r\n\r\n")[2]
        want = bytes((i * 7 + 3) % 251 for i in range(256 * 1024))
        check_eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(want).hexdigest(),
                 "256 KiB POST body byte-exact")
    check_eq(injected, len(plain), "every plain request injected")
    check_eq(prom_sum(m_on, "sonde_traceparent_injected_total"), float(len(plain)),
             "sonde_traceparent_injected_total counts the insertions")
    check_eq(prom_sum(m_on, "sonde_traceparent_present_total"), 1.0,
             "sonde_traceparent_present_total: the request that had one")
    check(prom_sum(m_on, "sonde_traceparent_unsure_total") >= 1.0,
          "sonde_traceparent_unsure_total: the pipelined write")


def part_serving(work):
    d = workdir("inject-srv")
    for name, src in (("recorder.py", RECORDER), ("front.py", FRONT)):
        with open(os.path.join(d, name), "w") as f:
            f.write(src)
    pf, pb, prom = free_port(), free_port(), free_port()
    out = os.path.join(d, "recv.jsonl")
    back = Proc([sys.executable, os.path.join(d, "recorder.py"), str(pb), out])
    wait_port(pb)
    cfg = os.path.join(d, "sonde.yaml")
    with open(cfg, "w") as f:
        f.write(f"""services:
  - name: front
    open_ports: [{pf}]
    inject_traceparent: true
export:
  prometheus: {{ port: {prom} }}
""")
    agent = Agent("--config", cfg)
    front = Proc([sys.executable, os.path.join(d, "front.py"), str(pf), str(pb), str(work)])
    wait_port(pf)
    n = 40
    try:
        time.sleep(0.5)
        for i in range(n):
            urllib.request.urlopen(f"http://127.0.0.1:{pf}/f/r{i}", timeout=10).read()
        agent.wait_spans(2 * n, timeout=10)
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{prom}/metrics")
    finally:
        agent.stop()
        front.stop()
        back.stop()
    got = records(out)
    check_eq(len(got), n, "the back end got every call")
    spans = agent.spans()
    srv = {s["attributes"].get("url.path", "").rsplit("/", 1)[-1]: s for s in spans
           if s["kind"] == "SERVER"}
    cli = {s["attributes"].get("url.path", "").rsplit("/", 1)[-1]: s for s in spans
           if s["kind"] == "CLIENT"}
    injected = wrong = 0
    for raw in got:
        rid = path_of(raw).rsplit("/", 1)[-1]
        _, tps, _ = split_tp(raw)
        if not tps:
            continue
        injected += 1
        s, c = srv.get(rid), cli.get(rid)
        good = (s and c and tps[0][0] == s["trace_id"] and c["trace_id"] == s["trace_id"]
                and c["span_id"] == tps[0][1] and c["parent_span_id"] == s["span_id"])
        if not good:
            wrong += 1
            print(f"     {rid}: injected {tps[0]}, server {s and s['trace_id']}, "
                  f"client {c and (c['trace_id'], c['span_id'], c['parent_span_id'])}")
    noctx = prom_sum(metrics, "sonde_traceparent_no_context_total")
    print(f"note - serving front end working {work * 1000:.0f} ms before its call: "
          f"{injected}/{n} calls injected, {int(noctx)} left alone (what the thread served "
          f"was not known in time)")
    check(injected >= 1, "a serving process's calls get the trace of the request it serves")
    check_eq(wrong, 0, "no injected traceparent names another trace or parent")
    check_eq(float(injected) + noctx, float(n), "each call injected or counted as left alone")


def main():
    require_live()
    part_client()
    part_serving(0.005)
    part_serving(0.0)
    finish()


if __name__ == "__main__":
    main()
