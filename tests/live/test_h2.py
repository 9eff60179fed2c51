#!/usr/bin/env python3
"""Live: plain HTTP/2 with real eBPF (the grpc plugin's HTTP side).

1. nghttpd (h2c, prior knowledge) driven by h2load -n 200 -c 2 -m 10: exactly
   200 HTTP/2 SERVER spans with status 200, and the same count in
   http_server_request_duration_seconds_count{network_protocol_version="2"};
   h2load's own "succeeded" figure is the reference.
2. curl --http2-prior-knowledge against nghttpd (one curl per request),
   watched on both sides at once: SERVER spans for nghttpd and CLIENT spans
   for the curl processes (chosen by --exe-path), with the right paths,
   statuses, configured route (http.route) and network.protocol.version=2;
   no query string in url.path.
3. h2 over TLS: nghttpd with a self-signed certificate (libssl, through the
   TLS uprobes) driven by h2load and curl: spans with url.scheme=https.
4. The plugin's capture cap (SDK 1.1): a node http2 client makes one
   request, waits, then 20 at once; nghttpd answers the burst in one write
   of about 10 KB (20 responses), more than the default 4 KiB capture: with
   the 16384-byte cap the plugin asks for, that write is captured whole, so
   all 21 requests are SERVER spans and no read or write was cut.
"""
import collections
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, fetch, finish, free_port,
                        prom_sum, require_live, wait_port, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_peers")


def docroot(d):
    root = os.path.join(d, "www")
    os.makedirs(os.path.join(root, "users"), exist_ok=True)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<p>hello</p>\n")
    for u in ("42", "7"):
        with open(os.path.join(root, "users", u), "w") as f:
            f.write("user\n")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(b"b" * 300000)
    with open(os.path.join(root, "burst.bin"), "wb") as f:
        f.write(b"m" * 500)
    return root


def h2_spans(agent, kind=None, pid=None):
    return [s for s in agent.spans() if s["scope"] == "grpc"
            and (kind is None or s["kind"] == kind)
            and (pid is None or s["resource"].get("process.pid") == pid)]


def h2load_ok(out):
    for line in out.splitlines():
        if line.startswith("requests:"):
            return int(line.split("done, ")[1].split(" succeeded")[0])
    return -1


def part_h2load(d, root):
    port, pprom = free_port(), free_port()
    srv = Proc(["nghttpd", "--no-tls", "-d", root, str(port)])
    wait_port(port)
    agent = Agent("--open-port", str(port), "--prometheus-port", str(pprom))
    try:
        r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10",
                            f"http://127.0.0.1:{port}/index.html"],
                           capture_output=True, text=True, timeout=60)
        ok = h2load_ok(r.stdout)
        spans = agent.wait_spans(200, timeout=10, pred=lambda s: s["scope"] == "grpc")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
        srv.stop()
    spans = h2_spans(agent, "SERVER")
    check_eq(ok, 200, "h2load: 200 requests succeeded")
    check_eq(len(spans), 200, "h2load -n 200 -c 2 -m 10: HTTP/2 server spans")
    check_eq(collections.Counter((s["name"], s["attributes"].get("http.response.status_code"))
                                 for s in spans), {("GET", 200): 200},
             "every span: GET, status 200")
    check(all(s["attributes"].get("network.protocol.version") == "2"
              and s["attributes"].get("url.path") == "/index.html"
              and s["attributes"].get("url.scheme") == "http" for s in spans),
          "network.protocol.version=2, url.path, url.scheme=http")
    check_eq(len({s["attributes"]["network.peer.port"] for s in spans}), 2,
             "two connections (h2load -c 2)")
    check_eq(int(prom_sum(metrics, "http_server_request_duration_seconds_count",
                          network_protocol_version="2")), 200,
             "http_server_request_duration_seconds_count{network_protocol_version=\"2\"}")


def part_curl(d, root):
    port = free_port()
    cfg = os.path.join(d, "h2.yaml")
    with open(cfg, "w") as f:
        f.write(f"services:\n  - name: h2srv\n    open_ports: [{port}]\n"
                f"    routes: [\"/users/{{id}}\"]\n"
                f"  - name: curlcli\n    exe_path: \"curl$\"\n")
    srv = Proc(["nghttpd", "--no-tls", "-d", root, str(port)])
    wait_port(port)
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/users/42?token=SECRET", f"{base}/users/7", f"{base}/missing", f"{base}/big.bin"]
    agent = Agent("--config", cfg)
    try:
        # one curl per request: curl 7.88 does not send a second request on a
        # reused prior-knowledge connection
        for u in urls:
            subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", u],
                           timeout=30, check=True)
        agent.wait_spans(6, timeout=10, pred=lambda s: s["scope"] == "grpc")
        time.sleep(0.5)
    finally:
        agent.stop()
        srv.stop()
    want = [("/users/42", 200), ("/users/7", 200), ("/missing", 404)]
    for kind, svc in (("SERVER", "h2srv"), ("CLIENT", "curlcli")):
        spans = [s for s in h2_spans(agent, kind) if s["resource"]["service.name"] == svc]
        got = sorted((s["attributes"].get("url.path"), s["attributes"].get("http.response.status_code"))
                     for s in spans)
        big = [g for g in got if g[0] == "/big.bin"]
        check_eq([g for g in got if g[0] != "/big.bin"], sorted(want),
                 f"curl --http2-prior-knowledge: {kind} spans of {svc} (path, status)")
        # 300 KB arrive in ~49 KB writes of three 16 KiB DATA frames each: with
        # the 4 KiB capture the frame holding END_STREAM is not seen, so that
        # stream is dropped (counted), never reported with a guessed end.
        check(big in ([], [("/big.bin", 200)]),
              f"{kind}: the 300 KB response is right or dropped, never wrong ({big})")
        check(all(s["attributes"].get("network.protocol.version") == "2" for s in spans),
              f"{kind}: network.protocol.version=2")
        check(not any("SECRET" in str(v) for s in spans for v in s["attributes"].values()),
              f"{kind}: no query string exported")
        errs = [s for s in spans if s["status"]["code"] == "ERROR"]
        # semconv: a 404 is an error for the client only
        check_eq(len(errs), 1 if kind == "CLIENT" else 0, f"{kind}: error spans")
    srv_spans = [s for s in h2_spans(agent, "SERVER") if s["resource"]["service.name"] == "h2srv"]
    users = [s for s in srv_spans if s["attributes"].get("url.path", "").startswith("/users/")]
    check(len(users) == 2 and all(s["attributes"].get("http.route") == "/users/{id}"
                                  and s["name"] == "GET /users/{id}" for s in users),
          "configured route: http.route and span name")
    cl = [s for s in h2_spans(agent, "CLIENT")]
    check(all(s["attributes"].get("server.port") == port and "client.address" not in s["attributes"]
              for s in cl), "client spans: server.port, no client.address")


def part_tls(d, root):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=localhost"], capture_output=True)
    if r.returncode:
        cannot_run("openssl cannot make a self-signed certificate")
    port = free_port()
    srv = Proc(["nghttpd", "-d", root, str(port), key, cert])
    wait_port(port)
    agent = Agent("--open-port", str(port))
    try:
        r = subprocess.run(["h2load", "-n", "100", "-c", "2", "-m", "10",
                            f"https://127.0.0.1:{port}/index.html"],
                           capture_output=True, text=True, timeout=60)
        ok = h2load_ok(r.stdout)
        c = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                            f"https://127.0.0.1:{port}/missing"], capture_output=True, text=True,
                           timeout=30)
        agent.wait_spans(101, timeout=10, pred=lambda s: s["scope"] == "grpc")
        time.sleep(0.5)
    finally:
        agent.stop()
        srv.stop()
    spans = h2_spans(agent, "SERVER")
    check_eq(ok, 100, "h2load over TLS: 100 requests succeeded")
    check_eq(c.stdout, "2", "curl negotiated h2 over TLS")
    got = collections.Counter((s["attributes"].get("url.path"), s["attributes"].get("http.response.status_code"),
                               s["attributes"].get("url.scheme")) for s in spans)
    check_eq(dict(got), {("/index.html", 200, "https"): 100, ("/missing", 404, "https"): 1},
             "h2 over TLS (libssl uprobes): server spans with url.scheme=https")


def part_burst(d, root):
    port, pprom = free_port(), free_port()
    srv = Proc(["nghttpd", "--no-tls", "-d", root, str(port)])
    wait_port(port)
    agent = Agent("--open-port", str(port), "--prometheus-port", str(pprom))
    try:
        r = subprocess.run(["node", os.path.join(PEERS, "h2_burst.js"), str(port), "/burst.bin", "20", "500"],
                           capture_output=True, text=True, timeout=60)
        agent.wait_spans(21, timeout=10, pred=lambda s: s["scope"] == "grpc")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
        srv.stop()
    check_eq(r.stdout.strip(), '{"ok":21}', f"node http2: 21 requests answered ({r.stderr.strip()[-200:]})")
    spans = h2_spans(agent, "SERVER")
    check_eq(collections.Counter((s["attributes"].get("url.path"), s["attributes"].get("http.response.status_code"))
                                 for s in spans), {("/burst.bin", 200): 21},
             "a burst answered in one ~10 KB write: one SERVER span per request")
    check_eq(int(prom_sum(metrics, "sonde_payloads_truncated_total")), 0,
             "capture cap 16384 (SDK 1.1 conn_set_capture): no write of nghttpd was cut")
    check_eq(int(prom_sum(metrics, "sonde_h2_position_losses_total")), 0, "no frame position lost")


def part_garbage(d, root):
    """Malformed HTTP/2 at a watched server: the agent keeps running, says
    so in its counters, and the next real clients are still seen."""
    port, pprom = free_port(), free_port()
    srv = Proc(["nghttpd", "--no-tls", "-d", root, str(port)])
    wait_port(port)
    agent = Agent("--open-port", str(port), "--prometheus-port", str(pprom))
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    bad = [
        preface + settings + b"\xff\xff\xff\x01\x04\x00\x00\x00\x01" + b"x" * 64,  # huge HEADERS
        preface + settings + b"\x00\x00\x10\x01\x04\x00\x00",                      # cut in a header
        preface + settings + bytes(range(256)) * 4,                                    # noise
        preface[:10],                                                                  # cut preface
    ]
    try:
        for payload in bad:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                try:
                    while c.recv(4096):
                        pass
                except OSError:
                    pass
        r = subprocess.run(["h2load", "-n", "20", "-c", "1", "-m", "4",
                            f"http://127.0.0.1:{port}/index.html"],
                           capture_output=True, text=True, timeout=60)
        ok = h2load_ok(r.stdout)
        agent.wait_spans(20, timeout=10, pred=lambda s: s["scope"] == "grpc")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        alive = agent.proc.poll() is None
    finally:
        agent.stop()
        srv.stop()
    check(alive, "the agent survived malformed HTTP/2")
    check_eq(ok, 20, "nghttpd still serves after the garbage")
    spans = [s for s in h2_spans(agent, "SERVER")
             if s["attributes"].get("http.response.status_code") == 200]
    check_eq(len(spans), 20, "the real requests after the garbage are all spans")
    losses = prom_sum(metrics, "sonde_h2_position_losses_total")
    given_up = prom_sum(metrics, "sonde_protocol_errors_total")
    print(f"note - malformed HTTP/2, 4 bad connections: sonde_h2_position_losses_total "
          f"{losses:.0f}, sonde_protocol_errors_total {given_up:.0f}")
    check(losses + given_up >= 1, "malformed HTTP/2 is counted (frame position losses)")


def main():
    require_live("nghttpd", "h2load", "curl", "openssl", "node")
    d = workdir("h2")
    root = docroot(d)
    part_h2load(d, root)
    part_curl(d, root)
    part_tls(d, root)
    part_burst(d, root)
    part_garbage(d, root)
    finish()


if __name__ == "__main__":
    main()
