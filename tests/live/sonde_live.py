"""sonde_live.py - shared harness for the live tier (root, real eBPF).

Each tests/live/test_*.py is one ctest test. It starts real servers and
clients on loopback, runs the real agent (build/sonde) against them, and
asserts on what the agent exports: the JSON span lines of `--print json`
and the Prometheus text of `/metrics`.

The one idea: a live test never skips quietly. When it cannot run (not root,
no BPF, a missing server binary) it exits 77 (ctest's skip code) with the
reason, and under CI=true it fails instead.
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SRC = os.environ.get("SONDE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SONDE_BUILD") or os.path.join(SRC, "build")
SONDE = os.path.join(BUILD, "sonde")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_results = {"passed": 0, "failed": 0}
_live = []  # every Agent and Proc started, stopped at exit whatever happens


def _stop_all():
    for x in reversed(_live):
        try:
            x.stop()
        except Exception:
            pass


atexit.register(_stop_all)


def cannot_run(why):
    """The test cannot run here: skip (77) locally, fail in CI."""
    if CI:
        print(f"FAIL: live test cannot run in CI: {why}")
        sys.exit(1)
    print(f"SKIP: {why}")
    sys.exit(77)


def require_live(*binaries):
    if os.geteuid() != 0:
        cannot_run("the live tier needs root (CAP_BPF, CAP_SYS_ADMIN)")
    if not os.path.exists(SONDE):
        cannot_run(f"{SONDE} is not built")
    for b in binaries:
        if not shutil.which(b) and not os.path.exists(b):
            cannot_run(f"{b} is not installed (scripts/bootstrap.sh test installs it)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


class Agent:
    """The real agent as a subprocess; stdout lines are spans (--print json)."""

    def __init__(self, *args, env=None, ready_timeout=30.0):
        self.args = [SONDE, "--print", "json", *args]
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=e, text=True, bufsize=1)
        _live.append(self)
        self.lines = []
        self.err = []
        self._ready = threading.Event()
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out.start()
        self._t_err.start()
        if not self._ready.wait(ready_timeout):
            self.stop()
            raise RuntimeError("agent did not print 'ready' within %.0fs; stderr:\n%s"
                               % (ready_timeout, "".join(self.err)))

    def _read_out(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line)
            if "ready" in line:
                self._ready.set()
        self._ready.set()

    def spans(self):
        out = []
        for l in list(self.lines):
            l = l.strip()
            if l:
                out.append(json.loads(l))
        return out

    def wait_spans(self, n, timeout=10.0, pred=None):
        """Wait until at least n spans (matching pred) arrived; return them."""
        end = time.time() + timeout
        while True:
            got = [s for s in self.spans() if pred is None or pred(s)]
            if len(got) >= n or time.time() > end:
                return got
            time.sleep(0.1)

    def stderr_text(self):
        return "".join(self.err)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._t_out.join(5)
        self._t_err.join(5)
        return self.proc.returncode


def fetch(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def prom_samples(text):
    """Parse Prometheus text: list of (name, {labels}, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def prom_sum(text, name, **match):
    total = 0.0
    for n, labels, v in prom_samples(text):
        if n == name and all(labels.get(k) == str(val) for k, val in match.items()):
            total += v
    return total


class Proc:
    """A server or client under test."""

    def __init__(self, args, cwd=None, env=None, stdin=None):
        e = dict(os.environ)
        e.update(env or {})
        # stderr goes to a file: a pipe nobody reads fills up (python
        # http.server logs every request) and would block the server.
        self.log = tempfile.NamedTemporaryFile(prefix="sonde-proc-", suffix=".log", delete=False)
        self.p = subprocess.Popen(args, cwd=cwd, env=e, stdout=subprocess.DEVNULL,
                                  stderr=self.log, stdin=stdin, start_new_session=True)
        self.pid = self.p.pid
        _live.append(self)

    def stderr_text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def workdir(name):
    d = tempfile.mkdtemp(prefix=f"sonde-{name}-")
    return d


def nginx(port, root, extra="", tls=None):
    """nginx with one master and one worker, in the foreground."""
    d = workdir("nginx")
    for sub in ("logs", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    listen = f"listen 127.0.0.1:{port};"
    tls_lines = ""
    if tls:
        listen = f"listen 127.0.0.1:{port} ssl;"
        tls_lines = f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};"
    conf = f"""
daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  keepalive_requests 10000;
  server {{
    {listen} {tls_lines}
    root {root};
    location = /boom {{ return 503; }}
    location = /created {{ return 201 "made\\n"; }}
    {extra}
  }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return Proc(["nginx", "-p", d, "-c", path])


def raw_http(port, payload, expect_responses, timeout=10.0):
    """Send raw bytes on one connection; read until expect_responses status
    lines arrived (bodies included) or the peer closes. Returns the bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if isinstance(payload, list):
        for p in payload:
            s.sendall(p)
            time.sleep(0.02)
    else:
        s.sendall(payload)
    data = b""
    end = time.time() + timeout
    while data.count(b"HTTP/1.") < expect_responses and time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    # let the last body arrive
    s.settimeout(0.3)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return data


def check(cond, what):
    if cond:
        _results["passed"] += 1
        print(f"ok   - {what}")
    else:
        _results["failed"] += 1
        print(f"FAIL - {what}")


def check_eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def finish():
    p, f = _results["passed"], _results["failed"]
    print(f"{p} passed, {f} failed")
    sys.exit(1 if f or not p else 0)
