#!/usr/bin/env python3
"""Live: one trace per request across two watched services on one host.

A Python front end (threaded http.server) calls a Python back end for every
request, over one keep-alive connection per front-end thread or a fresh
connection per call; both are watched by one agent, and nothing is added to
either application. Wanted, for every request id:

  front SERVER span  ->  front CLIENT span  ->  back SERVER span

(the back end's server span the child of the front end's client span: the
same-host link by connection endpoints and stream position; the client
span the child of the server span: the thread that serves the request).

Then requests that never get a response: the back end closes the
connection without answering (/crash), or its process exits in the middle of
a request (/exit). Each still gives one server span, with an error status,
error.type no_response, and an end time after its start.
"""
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, fetch, finish, free_port, prom_sum,
                        require_live, wait_port, workdir)

BACKEND = r'''
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/crash"):
            self.close_connection = True   # no answer at all
            return
        if self.path.startswith("/exit"):
            os._exit(3)
        body = b"back " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

FRONTEND = r'''
import http.client, http.server, sys, threading, urllib.request
back = int(sys.argv[2])
local = threading.local()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        rid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/k/"):     # keep-alive: one connection per thread
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = http.client.HTTPConnection("127.0.0.1", back)
            c.request("GET", "/b/" + rid)
            got = c.getresponse().read()
        else:                                # a new connection per call
            got = urllib.request.urlopen("http://127.0.0.1:%d/b/%s" % (back, rid)).read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(got)))
        self.end_headers()
        self.wfile.write(got)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def spans_by(spans, service, kind, prefix):
    out = {}
    for s in spans:
        if s["resource"]["service.name"] != service or s["kind"] != kind:
            continue
        path = s["attributes"].get("url.path", "")
        if path.startswith(prefix):
            out.setdefault(path.rsplit("/", 1)[-1], []).append(s)
    return out


def child_of(c, p):
    return c["trace_id"] == p["trace_id"] and c["parent_span_id"] == p["span_id"]


def part_linked():
    d = workdir("traces")
    pf, pb, prom = free_port(), free_port(), free_port()
    for name, src in (("back.py", BACKEND), ("front.py", FRONTEND)):
        with open(os.path.join(d, name), "w") as f:
            f.write(src)
    cfg = os.path.join(d, "sonde.yaml")
    with open(cfg, "w") as f:
        f.write(f"""services:
  - name: front
    open_ports: [{pf}]
  - name: back
    open_ports: [{pb}]
export:
  prometheus: {{ port: {prom} }}
""")
    back = Proc([sys.executable, os.path.join(d, "back.py"), str(pb)])
    front = Proc([sys.executable, os.path.join(d, "front.py"), str(pf), str(pb)])
    wait_port(pb)
    wait_port(pf)
    agent = Agent("--config", cfg)
    ids = [f"{mode}{i}" for mode in ("k", "n") for i in range(12)]
    errors = []

    def call(rid):
        mode = "k" if rid.startswith("k") else "n"
        try:
            got = urllib.request.urlopen(f"http://127.0.0.1:{pf}/{mode}/{rid}", timeout=10).read()
            if got != f"back /b/{rid}".encode():
                errors.append((rid, got))
        except OSError as e:
            errors.append((rid, str(e)))

    try:
        # four at a time: the front end's threads serve requests side by side
        for i in range(0, len(ids), 4):
            ts = [threading.Thread(target=call, args=(r,)) for r in ids[i:i + 4]]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        agent.wait_spans(3 * len(ids), timeout=10)
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{prom}/metrics")
    finally:
        agent.stop()
        front.stop()
        back.stop()
    check_eq(errors, [], "every request answered by the back end")
    spans = agent.spans()
    fs = spans_by(spans, "front", "SERVER", "/")
    fc = spans_by(spans, "front", "CLIENT", "/b/")
    bs = spans_by(spans, "back", "SERVER", "/b/")
    for what, m in (("front SERVER", fs), ("front CLIENT", fc), ("back SERVER", bs)):
        check_eq(sorted(m), sorted(ids), f"one {what} span per request id")
    linked = {"keep-alive": [0, 0], "new connection": [0, 0]}
    client_ok = 0
    for rid in ids:
        if not (rid in fs and rid in fc and rid in bs):
            continue
        f, c, b = fs[rid][0], fc[rid][0], bs[rid][0]
        client_ok += child_of(c, f)
        k = "keep-alive" if rid.startswith("k") else "new connection"
        linked[k][0] += child_of(b, c)
        linked[k][1] += 1
        if not child_of(b, c):
            print(f"     {rid}: back end span trace {b['trace_id'][:8]} parent {b['parent_span_id']}, "
                  f"client span trace {c['trace_id'][:8]} id {c['span_id']}")
    check_eq(client_ok, len(ids), "every front CLIENT span is the child of its own SERVER span")
    for k, (ok, n) in linked.items():
        check_eq(ok, n, f"every back-end SERVER span is the child of the front end's CLIENT span "
                        f"({k})")
    check_eq(prom_sum(metrics, "sonde_trace_links_total"), float(len(ids)),
             "sonde_trace_links_total counts the links")


def part_no_response():
    d = workdir("noresp")
    pb = free_port()
    with open(os.path.join(d, "back.py"), "w") as f:
        f.write(BACKEND)
    back = Proc([sys.executable, os.path.join(d, "back.py"), str(pb)])
    wait_port(pb)
    agent = Agent("--open-port", str(pb))
    outcomes = []
    try:
        for path in ("/crash/1", "/ok/1", "/exit/1"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{pb}{path}", timeout=10).read()
                outcomes.append((path, "answered"))
            except Exception as e:  # the peer closed or died: what we want here
                outcomes.append((path, type(e).__name__))
        agent.wait_spans(3, timeout=10)
        time.sleep(0.5)
    finally:
        agent.stop()
        back.stop()
    print(f"note - client outcomes: {outcomes}")
    srv = {s["attributes"].get("url.path"): s for s in agent.spans() if s["kind"] == "SERVER"}
    check_eq(sorted(srv), ["/crash/1", "/exit/1", "/ok/1"], "one server span per request")
    for path in ("/crash/1", "/exit/1"):
        s = srv.get(path)
        if not s:
            continue
        check_eq(s["status"]["code"], "ERROR", f"{path}: error status")
        check_eq(s["attributes"].get("error.type"), "no_response", f"{path}: error.type")
        check("http.response.status_code" not in s["attributes"], f"{path}: no status code guessed")
        check(s["end_time_unix_nano"] > s["start_time_unix_nano"], f"{path}: the span has a duration")
    if "/ok/1" in srv:
        check_eq(srv["/ok/1"]["attributes"].get("http.response.status_code"), 200,
                 "/ok/1 answered normally")


def main():
    require_live()
    part_linked()
    part_no_response()
    finish()


if __name__ == "__main__":
    main()
