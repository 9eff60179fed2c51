#!/usr/bin/env python3
"""Live: nginx as a reverse proxy, under concurrent load, in one trace.

nginx (one worker: an event loop serving every request on one thread)
proxies to a watched Python back end; both are watched by one agent with
their stock settings (proxy_pass forwards the request's headers). Callers
send a W3C traceparent, as an instrumented upstream service does, 8 at a
time. Wanted, for every request:

  nginx SERVER  (child of the caller's context, from the header)
    -> nginx CLIENT  (child of the nginx SERVER span: the upstream request
                      forwards the traceparent that server span received)
      -> back-end SERVER  (child of the nginx CLIENT span: same-host link)

Then the same load without traceparent headers: nothing in nginx's bytes
ties an upstream request to the request it serves, and the thread serves
many at once, so the nginx CLIENT span gets no parent - unless its request
was the only one open on the thread - and never a wrong one, while the back end's server span is still the child of the nginx
CLIENT span (docs/architecture.md, "Trace context").
"""
import os
import secrets
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, finish, free_port, nginx, require_live,
                        wait_port, workdir)

BACKEND = r'''
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(0.02)                  # requests overlap in nginx
        body = b"back " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

N = 40


def load(port, prefix, with_header):
    sent, errors = {}, []

    def one(i):
        rid = f"{prefix}{i}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/p/{rid}")
        if with_header:
            tp = (secrets.token_hex(16), secrets.token_hex(8))
            sent[rid] = tp
            req.add_header("traceparent", f"00-{tp[0]}-{tp[1]}-01")
        try:
            if urllib.request.urlopen(req, timeout=10).read() != f"back /p/{rid}".encode():
                errors.append(rid)
        except OSError as e:
            errors.append((rid, str(e)))

    for i in range(0, N, 8):
        ts = [threading.Thread(target=one, args=(k,)) for k in range(i, i + 8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return sent, errors


def by_rid(spans, service_kind):
    out = {}
    for s in spans:
        key = (s["resource"]["service.name"], s["kind"])
        if key != service_kind:
            continue
        path = s["attributes"].get("url.path", "")
        if path.startswith("/p/"):
            out.setdefault(path[3:], []).append(s)
    return out


def child_of(c, p):
    return c["trace_id"] == p["trace_id"] and c["parent_span_id"] == p["span_id"]


def main():
    require_live("nginx")
    d = workdir("proxy")
    pn, pb = free_port(), free_port()
    with open(os.path.join(d, "back.py"), "w") as f:
        f.write(BACKEND)
    back = Proc([sys.executable, os.path.join(d, "back.py"), str(pb)])
    ng = nginx(pn, d, extra=f"location /p/ {{ proxy_pass http://127.0.0.1:{pb}; }}")
    wait_port(pb)
    wait_port(pn)
    cfg = os.path.join(d, "sonde.yaml")
    with open(cfg, "w") as f:
        f.write(f"""services:
  - name: proxy
    open_ports: [{pn}]
  - name: back
    open_ports: [{pb}]
""")
    agent = Agent("--config", cfg)
    try:
        sent, errors = load(pn, "h", True)
        errors2 = load(pn, "n", False)[1]
        agent.wait_spans(6 * N, timeout=15)
    finally:
        agent.stop()
        ng.stop()
        back.stop()
    check_eq(errors + errors2, [], "every request answered through the proxy")
    spans = agent.spans()
    ps = by_rid(spans, ("proxy", "SERVER"))
    pc = by_rid(spans, ("proxy", "CLIENT"))
    bs = by_rid(spans, ("back", "SERVER"))
    rids = [f"h{i}" for i in range(N)] + [f"n{i}" for i in range(N)]
    for what, m in (("nginx SERVER", ps), ("nginx CLIENT", pc), ("back-end SERVER", bs)):
        check_eq(sorted(k for k in m if len(m[k]) == 1), sorted(rids), f"one {what} span per request")
    good = {"server<-caller": 0, "client<-server": 0, "back<-client": 0, "unambiguous": 0}
    wrong = []
    for rid in rids:
        if rid not in ps or rid not in pc or rid not in bs:
            continue
        s, c, b = ps[rid][0], pc[rid][0], bs[rid][0]
        if rid.startswith("h"):
            tp = sent[rid]
            good["server<-caller"] += s["trace_id"] == tp[0] and s["parent_span_id"] == tp[1]
            good["client<-server"] += child_of(c, s)
        elif c["parent_span_id"]:
            # no header: the only parent allowed is the right one (the
            # request was the only one nginx's thread had open)
            if child_of(c, s):
                good["unambiguous"] += 1
            else:
                wrong.append(rid)
        good["back<-client"] += child_of(b, c)
    print(f"note - links: {good}")
    check_eq(good["server<-caller"], N, "nginx SERVER spans continue the caller's traceparent")
    check_eq(good["client<-server"], N,
             "nginx CLIENT spans are children of their own nginx SERVER span (forwarded header)")
    check_eq(good["back<-client"], 2 * N, "back-end SERVER spans are children of the nginx CLIENT span")
    check_eq(wrong, [], "without a header, no nginx CLIENT span gets a wrong parent "
                        f"({good['unambiguous']} of {N} had a lone request on the thread)")
    finish()


if __name__ == "__main__":
    main()
