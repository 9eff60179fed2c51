#!/usr/bin/env python3
"""Live: HTTP/1.x end to end with real eBPF.

python http.server (running before the agent), nginx (started after the
agent: discovery must pick it up), and a python front end that calls the
back end on the serving thread (client span must be the server span's
child). Driven by curl, a keep-alive client and raw pipelined requests.
Asserts span counts equal request counts, attributes, statuses, routes,
traceparent, privacy, and /metrics histogram counts.

Then (SDK 1.1 skip_to): 20 MB downloads from python http.server and nginx
by curl, both ends watched: once a response head with its Content-Length
is read, the body's reads and writes are not copied by the kernel
(sonde_payload_bytes_skipped_total), and every download is still one span
per side with status 200.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, fetch, finish, free_port, nginx,
                        prom_sum, raw_http, require_live, wait_port, workdir)

FRONTEND = r'''
import http.client, http.server, sys
backend = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        c = http.client.HTTPConnection("127.0.0.1", backend, timeout=5)
        c.request("GET", "/missing/123" if self.path.startswith("/bad") else "/index.html")
        r = c.getresponse(); r.read(); c.close()
        body = b"front %d\n" % r.status
        self.send_response(200 if r.status == 200 else 502)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def curl(*args):
    """curl with every URL's body discarded; returns the status codes."""
    argv = []
    for a in args:
        if a.startswith("http://") or a.startswith("https://"):
            argv += ["-o", "/dev/null", a]
        else:
            argv.append(a)
    r = subprocess.run(["curl", "-s", "-w", "%{http_code} ", *argv],
                       capture_output=True, timeout=30)
    return r.stdout.decode(errors="replace").split()


def main():
    require_live("curl", "nginx")
    root = workdir("docroot")
    os.chmod(root, 0o755)  # nginx workers run as nobody
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>hello</h1>\n")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(200 * 1024))

    p_py, p_ng, p_front, p_prom = free_port(), free_port(), free_port(), free_port()
    py = Proc([sys.executable, "-m", "http.server", "-p", "HTTP/1.1", "-b", "127.0.0.1",
               "-d", root, str(p_py)])
    front_py = os.path.join(workdir("front"), "front.py")
    with open(front_py, "w") as f:
        f.write(FRONTEND)
    front = Proc([sys.executable, front_py, str(p_front), str(p_py)])
    wait_port(p_py)
    wait_port(p_front)

    # A keep-alive connection opened before the agent starts: its requests
    # after the start must still be seen (pre-existing connection).
    import socket
    pre = socket.create_connection(("127.0.0.1", p_py))
    pre.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    pre.recv(65536)

    agent = Agent("--open-port", f"{p_py},{p_ng},{p_front}", "--prometheus-port", str(p_prom))
    ng = None
    try:
        # ---- python http.server ------------------------------------------
        expect_py = 0
        codes = curl(f"http://127.0.0.1:{p_py}/index.html")
        codes += curl(f"http://127.0.0.1:{p_py}/users/42", f"http://127.0.0.1:{p_py}/users/77")
        codes += curl("-X", "POST", "-d", "secret-body=1", f"http://127.0.0.1:{p_py}/index.html")
        codes += curl("-I", f"http://127.0.0.1:{p_py}/index.html")
        codes += curl("-H", "Authorization: Bearer sekrit-token-value",
                      "-H", "Cookie: session=cookie-secret",
                      f"http://127.0.0.1:{p_py}/index.html?token=query-secret")
        # keep-alive: big (truncated at the cap) then small, same connection
        codes += curl(f"http://127.0.0.1:{p_py}/big.bin", f"http://127.0.0.1:{p_py}/index.html",
                      f"http://127.0.0.1:{p_py}/index.html")
        codes += curl("-H", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                      f"http://127.0.0.1:{p_py}/index.html")
        expect_py += len(codes)
        check_eq(codes, ["200", "404", "404", "501", "200", "200", "200", "200", "200", "200"],
                 "python http.server status codes")
        pipe = b"".join(b"GET /index.html HTTP/1.1\r\nHost: p\r\n\r\n" for _ in range(3))
        raw = raw_http(p_py, pipe, 3)
        check_eq(raw.count(b"HTTP/1.1 200"), 3, "pipelined responses from python")
        expect_py += 3
        # headers split over many small writes
        raw = raw_http(p_py, [b"GET /ind", b"ex.html HT", b"TP/1.1\r\nHo", b"st: s\r\n", b"\r\n"], 1)
        expect_py += 1
        # the pre-existing connection
        pre.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        pre.recv(65536)
        pre.close()
        expect_py += 1

        # ---- nginx started after the agent ---------------------------------
        ng = nginx(p_ng, root)
        wait_port(p_ng)
        deadline = time.time() + 5
        while time.time() < deadline and "nginx" not in agent.stderr_text():
            time.sleep(0.1)
        check("nginx" in agent.stderr_text(), "nginx started after the agent is discovered")
        time.sleep(0.3)
        ng_codes = curl(f"http://127.0.0.1:{p_ng}/index.html", f"http://127.0.0.1:{p_ng}/nope/9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                        f"http://127.0.0.1:{p_ng}/boom", f"http://127.0.0.1:{p_ng}/created",
                        f"http://127.0.0.1:{p_ng}/big.bin")
        check_eq(ng_codes, ["200", "404", "503", "201", "200"], "nginx status codes")
        pipe = b"".join(b"GET /index.html HTTP/1.1\r\nHost: n\r\n\r\n" for _ in range(4))
        raw = raw_http(p_ng, pipe, 4)
        check_eq(raw.count(b"HTTP/1.1 200"), 4, "pipelined responses from nginx")
        expect_ng = len(ng_codes) + 4

        # ---- front end -> back end on the serving thread ---------------------
        front_codes = curl(f"http://127.0.0.1:{p_front}/ok", f"http://127.0.0.1:{p_front}/bad")
        check_eq(front_codes, ["200", "502"], "front end status codes")
        expect_py += 2  # the front end's calls reach python http.server

        total_server = expect_py + expect_ng + 2
        spans = agent.wait_spans(total_server + 2, timeout=10)
        time.sleep(1.0)
        metrics = fetch(f"http://127.0.0.1:{p_prom}/metrics")
    finally:
        rc = agent.stop()
        for p in (py, front, ng):
            if p:
                p.stop()
    spans = agent.spans()
    check_eq(rc, 0, "agent exit code")

    server = [s for s in spans if s["kind"] == "SERVER"]
    client = [s for s in spans if s["kind"] == "CLIENT"]
    by_port = lambda port: [s for s in server if s["attributes"].get("server.port") == port]
    s_py, s_ng, s_front = by_port(p_py), by_port(p_ng), by_port(p_front)
    check_eq(len(s_py), expect_py, "server spans for python http.server")
    check_eq(len(s_ng), expect_ng, "server spans for nginx")
    check_eq(len(s_front), 2, "server spans for the front end")
    check_eq(len(client), 2, "client spans from the front end")

    # attributes
    for s in server:
        a = s["attributes"]
        for k in ("http.request.method", "url.path", "http.route", "http.response.status_code",
                  "url.scheme", "server.address", "server.port", "client.address",
                  "network.protocol.version"):
            if k not in a:
                check(False, f"span {s['name']} lacks {k}")
                break
    check(all(s["attributes"].get("url.scheme") == "http" for s in server), "url.scheme=http")
    users = [s for s in s_py if s["attributes"].get("url.path", "").startswith("/users/")]
    check_eq(sorted(s["attributes"]["http.route"] for s in users), ["/users/*", "/users/*"],
             "id segments collapse into one route")
    check_eq(sorted(s["attributes"]["http.response.status_code"] for s in users), [404, 404],
             "404 status recorded")
    check(all(s["status"]["code"] != "ERROR" for s in users), "4xx is not an error on server spans")
    posts = [s for s in s_py if s["attributes"]["http.request.method"] == "POST"]
    check(len(posts) == 1 and posts[0]["status"]["code"] == "ERROR"
          and posts[0]["attributes"]["http.response.status_code"] == 501, "501 is an error")
    heads = [s for s in s_py if s["attributes"]["http.request.method"] == "HEAD"]
    check_eq(len(heads), 1, "HEAD request seen once")
    boom = [s for s in s_ng if s["attributes"]["http.response.status_code"] == 503]
    check(len(boom) == 1 and boom[0]["status"]["code"] == "ERROR", "nginx 503 is an error")
    hexroute = [s for s in s_ng if s["attributes"]["url.path"].startswith("/nope/")]
    check(len(hexroute) == 1 and hexroute[0]["attributes"]["http.route"] == "/nope/*",
          "long hex segment collapses")
    check(all("?" not in s["attributes"].get("url.path", "") and "?" not in s["attributes"]["http.route"]
              for s in server), "no query string in url.path or http.route")
    tp = [s for s in s_py if s["trace_id"] == "0af7651916cd43dd8448eb211c80319c"]
    check(len(tp) == 1 and tp[0]["parent_span_id"] == "b7ad6b7169203331", "traceparent honoured")
    ua = [s for s in s_py if s["attributes"].get("user_agent.original", "").startswith("curl/")]
    check(len(ua) >= 9, "user_agent.original from curl")
    dump = "\n".join(agent.lines) + metrics
    for secret in ("sekrit-token-value", "cookie-secret", "query-secret", "secret-body"):
        check(secret not in dump, f"'{secret}' never exported")
    check(all(s["resource"].get("service.name") for s in spans), "service.name on every span")
    check(all(s["name"].split(" ")[0] in ("GET", "POST", "HEAD") for s in spans), "span names")

    # parent/child across the front end
    for c in client:
        parent = [s for s in s_front if s["span_id"] == c["parent_span_id"]]
        check(len(parent) == 1 and parent[0]["trace_id"] == c["trace_id"],
              f"client span {c['attributes'].get('url.path')} is a child of the front end's server span")
        check_eq(c["attributes"].get("server.port"), p_py, "client span server.port")
    bad = [c for c in client if c["attributes"].get("http.response.status_code") == 404]
    check(len(bad) == 1 and bad[0]["status"]["code"] == "ERROR", "client 404 is an error")

    # metrics
    n_server = prom_sum(metrics, "http_server_request_duration_seconds_count")
    check_eq(int(n_server), len(server), "http_server_request_duration_seconds_count == server spans")
    check_eq(int(prom_sum(metrics, "http_client_request_duration_seconds_count")), len(client),
             "http_client_request_duration_seconds_count == client spans")
    check_eq(int(prom_sum(metrics, "http_server_request_duration_seconds_count", http_route="/users/*")),
             2, "route label on the histogram")
    check(prom_sum(metrics, "sonde_events_total") > 0, "sonde_events_total exported")
    check(prom_sum(metrics, "sonde_instrumented_processes") >= 3, "instrumented processes gauge")
    check(prom_sum(metrics, "sonde_payloads_truncated_total") >= 1, "truncated payloads counted (big.bin)")
    check('service_name="' in metrics, "service_name label")
    skip_body_bytes()
    finish()


def skip_body_bytes():
    root = workdir("bigroot")
    os.chmod(root, 0o755)
    size = 20_000_000
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(size))
    p_py, p_ng, p_prom = free_port(), free_port(), free_port()
    py = Proc([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", root, str(p_py)])
    ng = nginx(p_ng, root)
    wait_port(p_py)
    wait_port(p_ng)
    agent = Agent("--open-port", f"{p_py},{p_ng}", "--exe-path", "curl$", "--prometheus-port", str(p_prom))
    try:
        codes = curl(f"http://127.0.0.1:{p_py}/big.bin") + curl(f"http://127.0.0.1:{p_ng}/big.bin")
        agent.wait_spans(4, timeout=10)
        time.sleep(1.0)
        metrics = fetch(f"http://127.0.0.1:{p_prom}/metrics")
    finally:
        agent.stop()
        py.stop()
        ng.stop()
    check_eq(codes, ["200", "200"], "two 20 MB downloads")
    got = sorted((s["kind"], s["attributes"].get("http.response.status_code")) for s in agent.spans())
    check_eq(got, [("CLIENT", 200)] * 2 + [("SERVER", 200)] * 2, "one span per download and side")
    skipped = int(prom_sum(metrics, "sonde_payload_bytes_skipped_total"))
    # The policy applies from the system call after the agent read the
    # head: the first pieces of each body are still copied.
    check(0 < skipped <= 2 * 2 * size, f"body bytes not copied (skip_to): {skipped} of {2 * 2 * size} moved")


if __name__ == "__main__":
    main()
