#!/usr/bin/env python3
"""Live: HTTPS without keys, through the TLS-library uprobes.

Four TLS stacks, each checked for exactly-once spans with the right method,
path, status and url.scheme=https, and for matching /metrics counts:
  * nginx (libssl.so.3) started after the agent: master found by its
    listen(), worker by fork; curl -k with mixed statuses, 20 requests on one
    keep-alive connection, a 400 KB response, a POST;
  * a Python http.server wrapped with ssl.SSLContext.wrap_socket, which only
    imports ssl after the agent is running (the late-library path);
  * a Node.js HTTPS server and a Node.js HTTPS client, both on the OpenSSL
    linked statically into the node binary (memory BIO: no syscall runs
    inside SSL_read/SSL_write); the client is watched by --pid and gives
    CLIENT spans, including a 300 KB response read by many SSL_read calls;
  * a Python server that forks a child per connection and does the TLS
    handshake in the child (as PostgreSQL does): after its first fork its
    libssl uprobes are shared, so children are covered from their first
    instruction. The agent is stopped (SIGSTOP) while five such connections
    are served: per-process uprobes could only be attached after the agent
    read each FORK record, when the child had long exited.
No span may come from ciphertext (every name starts with a known method)
and the agent must report no plaintext dropped for want of a socket.
"""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, fetch, finish, nginx,
                        prom_sum, require_live, wait_port, workdir)

PY_SERVER = r'''
import socket, sys, time
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(64)
print("listening", file=sys.stderr, flush=True)
sys.stdin.readline()          # the agent is running now
import http.server, ssl       # loads libssl.so only now
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/missing"):
            return self.reply(404, b"no\n")
        if self.path.startswith("/big"):
            return self.reply(200, b"b" * 400000)
        self.reply(200, b"ok\n")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(201, b"made\n")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H, bind_and_activate=False)
srv.socket.close()
srv.socket = ctx.wrap_socket(ls, server_side=True)
print("serving", file=sys.stderr, flush=True)
srv.serve_forever()
'''

# One child per connection (socketserver.ForkingMixIn), TLS handshake in the
# child, keep-alive HTTP/1.1.
PY_FORK_SERVER = r'''
import http.server, socketserver, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def setup(self):
        self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
class S(socketserver.ForkingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
S(("127.0.0.1", port), H).serve_forever()
'''

NODE_SERVER = r'''
const https = require('https'), fs = require('fs');
const [port, cert, key] = [+process.argv[2], process.argv[3], process.argv[4]];
https.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    if (req.url.startsWith('/missing')) { res.writeHead(404); res.end('no\n'); return; }
    if (req.url.startsWith('/big')) { res.writeHead(200); res.end(Buffer.alloc(300000, 98)); return; }
    res.writeHead(req.method === 'POST' ? 201 : 200, {'content-type': 'text/plain'});
    res.end('ok\n');
  });
}).listen(port, '127.0.0.1');
'''

# Waits for a line on stdin, then sends the requests of argv[3] one after the
# other on one keep-alive connection and prints the statuses.
NODE_CLIENT = r'''
const https = require('https');
const port = +process.argv[2], plan = JSON.parse(process.argv[3]);
const agent = new https.Agent({keepAlive: true, maxSockets: 1});
const codes = [];
function next(i) {
  if (i >= plan.length) { console.log(codes.join(' ')); agent.destroy(); return; }
  const [method, path] = plan[i];
  const req = https.request({host: '127.0.0.1', port, path, method, agent,
                             rejectUnauthorized: false}, res => {
    let n = 0;
    res.on('data', c => { n += c.length; });
    res.on('end', () => { codes.push(res.statusCode + ':' + n); next(i + 1); });
  });
  if (method === 'POST') req.write('node-secret-body=1');
  req.end();
}
process.stdin.once('data', () => { process.stdin.destroy(); next(0); });
'''

CLIENT_PLAN = [["GET", "/a"], ["GET", "/missing/1"], ["GET", "/big"], ["POST", "/items"],
               ["GET", "/a"], ["GET", "/missing/2"], ["GET", "/big"], ["POST", "/items"]]

KNOWN_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")


def pick_ports(n):
    """n free ports in 17400-17599 (the live tier's range)."""
    out = []
    for p in range(17400 + os.getpid() % 100, 17600):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            out.append(p)
        except OSError:
            pass
        finally:
            s.close()
        if len(out) == n:
            return out
    raise RuntimeError("no free ports in 17400-17599")


def curl(*args):
    """curl -k with every URL's body discarded; returns 'code:bytes:connects'
    per URL (connects: new connections curl opened for that URL)."""
    argv = []
    for a in args:
        if a.startswith("https://"):
            argv += ["-o", "/dev/null", a]
        else:
            argv.append(a)
    r = subprocess.run(["curl", "-sk", "-w", "%{http_code}:%{size_download}:%{num_connects} ", *argv],
                       capture_output=True, timeout=60)
    return r.stdout.decode(errors="replace").split()


def codes_of(results):
    return [r.split(":")[0] for r in results]


def size_of(result):
    return int(result.split(":")[1])


def connects_of(results):
    return sum(int(r.split(":")[2]) for r in results)


def wait_stderr(agent, pattern, timeout=10.0):
    """Wait until the agent's stderr matches pattern; return the match."""
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, agent.stderr_text())
        if m:
            return m
        time.sleep(0.1)
    return None


def wait_line(proc, want, timeout=10.0):
    """Wait until proc's stderr (its log file) has a line equal to want."""
    end = time.time() + timeout
    while time.time() < end:
        if want in (l.strip() for l in proc.stderr_text().splitlines()):
            return True
        if proc.p.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def tls_file_of(pid):
    """Where a node process's OpenSSL lives: libssl.so if it maps one (a
    distribution build), else the node executable (static OpenSSL)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "/libssl.so" in path:
                return os.path.realpath(path)
    return os.path.realpath(f"/proc/{pid}/exe")


def span_key(s):
    a = s["attributes"]
    return (a.get("http.request.method"), a.get("url.path"), a.get("http.response.status_code"))


def main():
    require_live("curl", "nginx", "node", "openssl")
    tmp = workdir("https")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       capture_output=True, timeout=60)
    if r.returncode:
        cannot_run("openssl cannot make a self-signed certificate: " + r.stderr.decode()[-200:])
    root = workdir("https-docroot")
    os.chmod(root, 0o755)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>hello tls</h1>\n")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(400 * 1024))
    for name, text in (("py_server.py", PY_SERVER), ("server.js", NODE_SERVER),
                       ("client.js", NODE_CLIENT), ("py_fork.py", PY_FORK_SERVER)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)

    p_ng, p_py, p_node, p_prom, p_fork = pick_ports(5)
    py = Proc([sys.executable, os.path.join(tmp, "py_server.py"), str(p_py), cert, key],
              stdin=subprocess.PIPE)
    node_srv = Proc(["node", os.path.join(tmp, "server.js"), str(p_node), cert, key])
    node_cli = Proc(["node", os.path.join(tmp, "client.js"), str(p_node), json.dumps(CLIENT_PLAN)],
                    stdin=subprocess.PIPE)
    fork = Proc([sys.executable, os.path.join(tmp, "py_fork.py"), str(p_fork), cert, key])
    agent = ng = None
    try:
        if not wait_line(py, "listening"):
            raise RuntimeError("python server did not start")
        wait_port(p_node)
        wait_port(p_fork)
        agent = Agent("--open-port", f"{p_ng},{p_py},{p_node},{p_fork}", "--pid", str(node_cli.pid),
                      "--prometheus-port", str(p_prom))

        # ---- attach: node's OpenSSL, libssl in nginx (fork), late python
        node_lib = tls_file_of(node_srv.pid)
        for who, pid in (("server", node_srv.pid), ("client", node_cli.pid)):
            m = wait_stderr(agent, rf"tls: pid {pid}: uprobes on (\S+) ")
            check(m is not None and os.path.realpath(m.group(1)) == node_lib,
                  f"uprobes on the node {who}'s OpenSSL ({node_lib})")
        check(wait_stderr(agent, rf"tls: pid {py.pid}: uprobes", timeout=1) is None,
              "no uprobes on python before it loads libssl")
        py.p.stdin.write(b"go\n")
        py.p.stdin.flush()
        check(wait_line(py, "serving"), "python server wraps its socket")
        check(wait_stderr(agent, rf"tls: pid {py.pid}: uprobes on \S*libssl") is not None,
              "uprobes on python's libssl, loaded after the agent started")
        ng = nginx(p_ng, root, tls=(cert, key))
        wait_port(p_ng)
        ng_pids = set()
        end = time.time() + 10
        while time.time() < end and len(ng_pids) < 2:
            ng_pids = set(re.findall(r"watching pid (\d+) \(nginx\)", agent.stderr_text()))
            time.sleep(0.1)
        # The worker is forked: the master's libssl uprobes become shared
        # and cover it (the forking server below checks what that buys).
        attached = [p for p in ng_pids
                    if wait_stderr(agent, rf"tls: pid {p}: (uprobes on \S*libssl|\S*libssl\S* is "
                                          r"covered by its shared uprobes)", timeout=5)]
        check_eq(len(attached), 2, "uprobes on nginx master and worker libssl")

        # ---- nginx --------------------------------------------------------
        base = f"https://127.0.0.1:{p_ng}"
        ng_mixed = curl(f"{base}/index.html", f"{base}/nope/9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                        f"{base}/boom", f"{base}/created", f"{base}/big.bin")
        check_eq(codes_of(ng_mixed), ["200", "404", "503", "201", "200"], "nginx status codes")
        check_eq(size_of(ng_mixed[-1]), 400 * 1024, "nginx big.bin fully downloaded")
        ng_keep = curl(*[f"{base}/index.html" if i % 2 == 0 else f"{base}/created"
                         for i in range(20)])
        check_eq(codes_of(ng_keep), ["200", "201"] * 10, "nginx keep-alive status codes")
        check_eq(connects_of(ng_keep), 1, "20 requests on one connection")
        ng_post = curl("-X", "POST", "-d", "nginx-secret-body=1", f"{base}/index.html")
        check_eq(codes_of(ng_post), ["405"], "nginx refuses POST on a file")
        want_ng = collections.Counter(
            [("GET", "/index.html", 200), ("GET", "/nope/9f8e7d6c5b4a39281706f5e4d3c2b1a0", 404),
             ("GET", "/boom", 503), ("GET", "/created", 201), ("GET", "/big.bin", 200)]
            + [("GET", "/index.html", 200), ("GET", "/created", 201)] * 10
            + [("POST", "/index.html", 405)])

        # ---- python ---------------------------------------------------------
        base = f"https://127.0.0.1:{p_py}"
        py_mixed = curl(f"{base}/a", f"{base}/missing/1", f"{base}/big")
        py_mixed += curl("-d", "py-secret-body=1", f"{base}/post")
        py_keep = curl(*[f"{base}/a"] * 10)
        check_eq(codes_of(py_mixed), ["200", "404", "200", "201"], "python status codes")
        check_eq(size_of(py_mixed[2]), 400000, "python big response fully downloaded")
        check_eq(codes_of(py_keep), ["200"] * 10, "python keep-alive status codes")
        check_eq(connects_of(py_keep), 1, "10 python requests on one connection")
        want_py = collections.Counter(
            [("GET", "/a", 200), ("GET", "/missing/1", 404), ("GET", "/big", 200),
             ("POST", "/post", 201)] + [("GET", "/a", 200)] * 10)

        # ---- forking server: one child per connection -------------------------
        base = f"https://127.0.0.1:{p_fork}"
        check_eq(codes_of(curl(f"{base}/warm")), ["200"], "forking server answers")
        # nginx's fork may have shared the same libssl already.
        check(wait_stderr(agent, r"tls: pid \d+ forks: uprobes on .* are now shared")
              is not None, "libssl uprobes are shared once a watched server forks")
        os.kill(agent.proc.pid, signal.SIGSTOP)
        try:
            fork_res = [curl(f"{base}/f/{i}", f"{base}/f/{i}") for i in range(5)]
        finally:
            os.kill(agent.proc.pid, signal.SIGCONT)
        check_eq([codes_of(r) for r in fork_res], [["200", "200"]] * 5,
                 "forking server: 5 connections served while the agent was stopped")
        check_eq(sum(connects_of(r) for r in fork_res), 5, "two requests per connection")
        want_fork = collections.Counter(("GET", f"/f/{i}", 200) for i in range(5) for _ in range(2))

        # ---- node client -> node server ----------------------------------------
        node_cli.p.stdin.write(b"go\n")
        node_cli.p.stdin.close()
        node_cli.p.wait(30)
        want_node = collections.Counter(
            (m_, p_, {"/a": 200, "/big": 200, "/items": 201}.get(p_, 404))
            for m_, p_ in CLIENT_PLAN)

        n_server = (sum(want_ng.values()) + sum(want_py.values()) + sum(want_node.values())
                    + sum(want_fork.values()))
        agent.wait_spans(n_server + len(CLIENT_PLAN), timeout=15)
        time.sleep(1.0)
        metrics = fetch(f"http://127.0.0.1:{p_prom}/metrics")
    finally:
        rc = agent.stop() if agent else None
        for p in (py, node_srv, node_cli, ng, fork):
            if p:
                p.stop()
    check_eq(rc, 0, "agent exit code")
    spans = agent.spans()
    server = [s for s in spans if s["kind"] == "SERVER"]
    client = [s for s in spans if s["kind"] == "CLIENT"]
    by_port = lambda port: [s for s in server if s["attributes"].get("server.port") == port]

    # The first connection to the forking server raced its own attachment
    # (it made the uprobes shared): whether it was seen is not checked.
    warm = [s for s in by_port(p_fork) if s["attributes"].get("url.path") == "/warm"]
    for name, port, want in (("nginx", p_ng, want_ng), ("python", p_py, want_py),
                             ("node server", p_node, want_node),
                             ("forking server, children", p_fork, want_fork)):
        got = [s for s in by_port(port) if s not in warm]
        check_eq(len(got), sum(want.values()), f"{name}: server spans == requests")
        check_eq(collections.Counter(span_key(s) for s in got), want,
                 f"{name}: each request exactly once with its method, path and status")
    check_eq(len(server) - len(warm), n_server, "no other server spans")
    check_eq(len(client), len(CLIENT_PLAN), "node client: client spans == requests")
    check_eq(collections.Counter(span_key(s) for s in client), want_node,
             "node client: each request exactly once with its method, path and status")
    check(all(s["resource"].get("process.pid") == node_cli.pid for s in client),
          "client spans belong to the node client")
    check(all(s["attributes"].get("server.port") == p_node for s in client),
          "client spans: server.port is the node server")
    check(all(s["attributes"].get("url.scheme") == "https" for s in spans), "url.scheme=https")
    check(all(s["name"].split(" ")[0] in KNOWN_METHODS for s in spans),
          "no span from ciphertext (every name starts with a method)")
    errors = [s for s in server if s["attributes"].get("http.response.status_code") == 503]
    check(len(errors) == 1 and errors[0]["status"]["code"] == "ERROR", "nginx 503 is an error")
    routes = {s["attributes"].get("http.route") for s in by_port(p_ng)}
    check("/nope/*" in routes, "routes collapse over TLS too")

    dump = "\n".join(agent.lines) + metrics
    for secret in ("nginx-secret-body", "py-secret-body", "node-secret-body"):
        check(secret not in dump, f"'{secret}' never exported")

    n_srv = prom_sum(metrics, "http_server_request_duration_seconds_count", url_scheme="https")
    check_eq(int(n_srv), len(server), "https server histogram count == server spans")
    n_cli = prom_sum(metrics, "http_client_request_duration_seconds_count", url_scheme="https")
    check_eq(int(n_cli), len(client), "https client histogram count == client spans")
    check_eq(int(prom_sum(metrics, "http_server_request_duration_seconds_count", url_scheme="http")),
             0, "no plain-http histogram entries")

    m = re.search(r"capture: (\d+) TLS plaintext records, (\d+) dropped", agent.stderr_text())
    check(m is not None and int(m.group(1)) > 0, "TLS plaintext records counted")
    if m:
        print(f"     figures: {m.group(1)} TLS plaintext records, {m.group(2)} dropped; "
              f"{len(server)} server and {len(client)} client spans")
        check_eq(int(m.group(2)), 0, "no plaintext dropped for an unknown socket")
    finish()


if __name__ == "__main__":
    main()
