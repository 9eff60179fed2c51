#!/usr/bin/env python3
"""Live: nginx with Debian's stock http settings (sendfile on, tcp_nopush on,
gzip on, mime types, an access log), serving small and large files
interleaved on keep-alive connections, some of them pipelined.

With sendfile, response bodies never pass through a user buffer: the kernel
side reports them as byte counts (payload-less records), so the HTTP
parser's Content-Length framing stays right. A second nginx with sendfile
off moves the same large bodies through read/writev, far beyond the payload
cap. Both are checked the same way: the server spans, as (path, status)
pairs, equal nginx's own access log, request for request.
"""
import collections
import http.client
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, fetch, finish, free_port, prom_sum,
                        require_live, wait_port, workdir)

SIZES = {"/small.txt": 120, "/page.html": 3000, "/40k.bin": 40 * 1024, "/300k.bin": 300 * 1024}


def stock_nginx(port, root, sendfile):
    d = workdir("nginx-stock")
    for sub in ("logs", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    conf = f"""
daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 768; }}
http {{
  sendfile {"on" if sendfile else "off"};
  tcp_nopush on;
  types_hash_max_size 2048;
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  log_format paths '$request_uri $status';
  access_log {d}/logs/access.log paths;
  gzip on;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return Proc(["nginx", "-p", d, "-c", path]), os.path.join(d, "logs", "access.log")


def keepalive_client(port, paths):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for p in paths:
        conn.request("GET", p)
        r = conn.getresponse()
        body = r.read()
        if r.status == 200 and len(body) != SIZES[p]:
            raise RuntimeError(f"{p}: {len(body)} bytes, want {SIZES[p]}")
    conn.close()


def pipelined(port, paths):
    """All requests in one write; read every response fully."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths))
    want = sum(SIZES.get(p, 0) for p in paths)
    data = b""
    end = time.time() + 10
    while time.time() < end and (data.count(b"HTTP/1.1 ") < len(paths) or len(data) < want):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.count(b"HTTP/1.1 ")


def access_log(path, timeout=5.0):
    end = time.time() + timeout
    lines = []
    while time.time() < end:
        with open(path) as f:
            lines = [l.split() for l in f if l.strip()]
        time.sleep(0.3)
        with open(path) as f:
            if len([l for l in f if l.strip()]) == len(lines):
                break
    return collections.Counter((l[0], l[1]) for l in lines)


def main():
    require_live("nginx")
    root = workdir("www")
    os.chmod(root, 0o755)
    rnd = random.Random(7)
    for name, size in SIZES.items():
        with open(os.path.join(root, name.lstrip("/")), "wb") as f:
            f.write(bytes(rnd.getrandbits(8) for _ in range(size)))
        os.chmod(os.path.join(root, name.lstrip("/")), 0o644)

    p_on, p_off = free_port(), free_port()
    ng_on, log_on = stock_nginx(p_on, root, True)
    ng_off, log_off = stock_nginx(p_off, root, False)
    wait_port(p_on)
    wait_port(p_off)
    p_prom = free_port()
    agent = Agent("--open-port", f"{p_on},{p_off}", "--prometheus-port", str(p_prom))
    try:
        names = list(SIZES) + ["/missing.txt"]
        for port in (p_on, p_off):
            # Three keep-alive connections, 100 requests each, interleaved sizes.
            for c in range(3):
                keepalive_client(port, [rnd.choice(names) for _ in range(100)])
            # Pipelined: large bodies back to back in one connection.
            got = pipelined(port, ["/300k.bin", "/small.txt", "/40k.bin", "/300k.bin",
                                   "/page.html", "/missing.txt", "/small.txt"])
            check_eq(got, 7, f"port {port}: pipelined responses received")
            # Twenty-six short connections with one request each.
            for i in range(26):
                keepalive_client(port, [names[i % len(names)]])
        time.sleep(1.5)
        metrics = fetch(f"http://127.0.0.1:{p_prom}/metrics")
    finally:
        rc = agent.stop()
        ng_on.stop()
        ng_off.stop()
    check_eq(rc, 0, "agent exit code")
    spans = [s for s in agent.spans() if s["kind"] == "SERVER"]
    for port, log, label in ((p_on, log_on, "sendfile on"), (p_off, log_off, "sendfile off")):
        want = access_log(log)
        mine = [s for s in spans if s["attributes"].get("server.port") == port]
        got = collections.Counter((s["attributes"].get("url.path"),
                                   str(s["attributes"].get("http.response.status_code")))
                                  for s in mine)
        check_eq(sum(want.values()), 333, f"{label}: nginx logged every request")
        check_eq(len(mine), sum(want.values()), f"{label}: server spans = access log lines")
        check_eq(dict(got), dict(want), f"{label}: (path, status) pairs = access log")
    check(prom_sum(metrics, "sonde_nobuf_records_total") > 0,
          "sendfile transfers reached the agent as byte counts")
    check_eq(prom_sum(metrics, "sonde_stream_gaps_total"), 0.0, "no gaps in any stream")
    check_eq(prom_sum(metrics, "sonde_events_lost_total"), 0.0, "no records lost")
    finish()


if __name__ == "__main__":
    main()
