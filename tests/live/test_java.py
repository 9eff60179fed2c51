#!/usr/bin/env python3
"""Live: the Java runtime plugin (plugins/java) on JDK servers compiled now
with the JDK's javac (tests/live/java_peers/JavaPeer.java): TLS in JSSE,
not OpenSSL, so nothing but the plugin's agent can see the plaintext.

  A. The issue's check, on a JVM that ran before the agent: a JDK
     HttpsServer (com.sun.net.httpserver: TLS in SSLEngine over NIO
     channels) started, and serving HTTPS, before the agent starts. The
     plugin attaches its agent (no restart); 10 HTTPS requests with
     curl -k give 10 https SERVER spans, counted against the server's own
     log. Meanwhile a client keeps asking the server over HTTPS, from
     before the agent until after it exited: not one request fails. After
     the agent exits, the agent's thread is gone from the JVM and the JVM
     still answers.
  B. The same with a JVM started after the agent.
  C. A server on SSLServerSocket (TLS in SSLSocket), keep-alive: curl asks
     for 4 URLs on one connection; 4 https SERVER spans.
  D. A JVM that refuses attach (-XX:+DisableAttachMechanism), serving plain
     HTTP: exactly one log line from the plugin saying so, no SIGQUIT (no
     thread dump on its stdout), and its HTTP spans through the generic
     layer.
"""
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, finish, free_port,
                        require_live, wait_port, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java_peers")
N_REQ = 10


def build(work):
    r = subprocess.run(["javac", "-d", work, os.path.join(PEERS, "JavaPeer.java")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        cannot_run(f"javac JavaPeer failed: {r.stderr[-400:]}")
    ks = os.path.join(work, "ks.p12")
    r = subprocess.run(["keytool", "-genkeypair", "-keystore", ks, "-storetype", "PKCS12",
                        "-storepass", "changeit", "-keypass", "changeit", "-keyalg", "RSA",
                        "-keysize", "2048", "-dname", "CN=localhost", "-validity", "2",
                        "-alias", "peer"], capture_output=True, text=True)
    if r.returncode != 0:
        cannot_run(f"keytool failed: {r.stderr[-400:]}")
    return ks


class Jvm:
    """JavaPeer MODE PORT; its stdout (thread dumps would land there) in a file."""

    def __init__(self, work, mode, port, ks, *flags):
        self.out = os.path.join(work, f"jvm-{mode}-{port}.out")
        args = ["java", *flags, "-cp", work, "JavaPeer", mode, str(port), ks, "changeit"]
        self.proc = Proc(["sh", "-c", 'exec "$@" >"$0"', self.out, *args],
                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        wait_port(port, timeout=30)

    def stdout_text(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def served(self, prefix):
        return sum(1 for l in self.proc.stderr_text().splitlines()
                   if l.startswith("served id=" + prefix))

    def agent_thread(self):
        """Is the agent's thread (sonde-java-agent, 15 chars in comm) alive?"""
        task = f"/proc/{self.pid}/task"
        for t in os.listdir(task):
            try:
                with open(f"{task}/{t}/comm") as f:
                    if f.read().startswith("sonde-java-agen"):
                        return True
            except OSError:
                pass
        return False


def curl(url):
    r = subprocess.run(["curl", "-sk", "--max-time", "20", url], capture_output=True, text=True)
    return r.returncode, r.stdout


def https_conn(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)


def keepalive_get(c, path):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status


def https_get(port, path):
    c = https_conn(port)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class Steady:
    """A client asking the server over HTTPS every 50 ms, on new connections."""

    def __init__(self, port, prefix):
        self.port, self.prefix = port, prefix
        self.ok = self.fail = 0
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                if https_get(self.port, f"/req/{self.prefix}{i}") == 200:
                    self.ok += 1
                else:
                    self.fail += 1
            except Exception as e:  # noqa: BLE001 - counted and shown
                self.fail += 1
                self.errors.append(repr(e))
            i += 1
            time.sleep(0.05)

    def end(self):
        self.stop.set()
        self.t.join(30)
        return self.ok, self.fail


def wait_log(agent, needle, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if needle in agent.stderr_text():
            return True
        time.sleep(0.1)
    return False


def java_lines(agent, pid):
    return [l for l in agent.stderr_text().splitlines() if "[java]" in l and f"pid {pid} " in l]


def server_spans(spans, prefix, scheme="https"):
    return [s for s in spans if s.get("kind") == "SERVER"
            and (s.get("attributes") or {}).get("url.path", "").startswith("/req/" + prefix)
            and (s.get("attributes") or {}).get("url.scheme") == scheme]


def totals(agent):
    tail = [l for l in agent.stderr_text().splitlines() if "[java]" in l and "messages" in l]
    return tail[-1].strip() if tail else ""


def ten_requests(port, prefix):
    bad = []
    for i in range(N_REQ):
        rc, out = curl(f"https://127.0.0.1:{port}/req/{prefix}{i}")
        if rc != 0 or out.strip() != f"ok {prefix}{i}":
            bad.append((i, rc, out))
    return bad


def main():
    require_live("curl")
    for t in ("java", "javac", "keytool"):
        if not shutil.which(t):
            cannot_run(f"{t} (a JDK, Debian openjdk-17-jdk-headless) is not installed")
    work = workdir("java")
    ks = build(work)

    # --- A: a JVM that ran before the agent ---------------------------------------
    port = free_port()
    jvm = Jvm(work, "https", port, ks)
    check_eq(https_get(port, "/req/before"), 200, "A: the server answered HTTPS before the agent")
    # A keep-alive connection opened before the agent, used again after it.
    early = https_conn(port)
    check_eq(keepalive_get(early, "/req/early0"), 200, "A: keep-alive request before the agent")
    steady = Steady(port, "steady")
    time.sleep(0.5)
    agent = Agent("--open-port", str(port), "-v")
    on = wait_log(agent, f"pid {jvm.pid} (java): agent on")
    check(on, "A: the plugin loaded its agent into the running JVM")
    for l in java_lines(agent, jvm.pid):
        print("     " + l.strip())
    bad = ten_requests(port, "a")
    check_eq(bad, [], f"A: {N_REQ} HTTPS requests answered by curl -k")
    for rid in ("early1", "early2"):
        check_eq(keepalive_get(early, f"/req/{rid}"), 200,
                 f"A: {rid} on the connection opened before the agent")
    early.close()
    agent.wait_spans(N_REQ, timeout=15, pred=lambda s: s in server_spans([s], "a"))
    time.sleep(0.5)
    agent.stop()
    t = totals(agent)
    print("     " + (t or "(no totals line)"))
    spans = agent.spans()
    check_eq(jvm.served("a"), N_REQ, "A: requests the server logged")
    check_eq(len(server_spans(spans, "a")), N_REQ, "A: https SERVER spans (url.scheme=https)")
    check_eq(sorted(s["attributes"]["url.path"] for s in server_spans(spans, "a")),
             sorted(f"/req/a{i}" for i in range(N_REQ)), "A: one span per request, by path")
    check(all(s.get("name", "").startswith("GET ") for s in spans),
          f"A: every span is a parsed GET, none from ciphertext: "
          f"{sorted(set(s.get('name', '') for s in spans))}")
    check_eq(len(server_spans(spans, "early")), 2,
             "A: https SERVER spans on the connection opened before the agent (early1, early2)")
    # Plaintext whose socket the agent did not know is counted, never
    # guessed: only an exchange already under way when the agent came (the
    # steady client's) can be so.
    check("no connection 0," in t and "bad records 0" in t,
          "A: every plaintext message with a socket found its connection, no bad record")
    # After the agent: its thread goes, the JVM serves on.
    gone = False
    for _ in range(100):
        if not jvm.agent_thread():
            gone = True
            break
        time.sleep(0.1)
    check(gone, "A: the agent's thread left the JVM after the agent exited")
    check_eq(curl(f"https://127.0.0.1:{port}/req/after")[1].strip(), "ok after",
             "A: the JVM answers after the agent exited")
    time.sleep(1.0)
    ok, fail = steady.end()
    time.sleep(0.3)
    check(ok > 20 and fail == 0,
          f"A: the steady client throughout (before, during, after the agent): {ok} ok, "
          f"{fail} failed {steady.errors[:3]}")
    check_eq(jvm.served("steady"), ok, "A: steady requests the server logged")
    check("Full thread dump" not in jvm.stdout_text(), "A: no thread dump in the JVM's stdout")
    jvm.proc.stop()

    # --- B: a JVM started after the agent ------------------------------------------------
    port = free_port()
    agent = Agent("--open-port", str(port), "-v")
    jvm = Jvm(work, "https", port, ks)
    check(wait_log(agent, f"pid {jvm.pid} (java): agent on"),
          "B: the plugin loaded its agent into a JVM started after it")
    bad = ten_requests(port, "b")
    check_eq(bad, [], f"B: {N_REQ} HTTPS requests answered")
    agent.wait_spans(N_REQ, timeout=15)
    time.sleep(0.5)
    agent.stop()
    check_eq(jvm.served("b"), N_REQ, "B: requests the server logged")
    check_eq(len(server_spans(agent.spans(), "b")), N_REQ, "B: https SERVER spans")
    jvm.proc.stop()

    # --- C: SSLSocket server, keep-alive -------------------------------------------------------
    port = free_port()
    jvm = Jvm(work, "sslsocket", port, ks)
    agent = Agent("--open-port", str(port), "-v")
    check(wait_log(agent, f"pid {jvm.pid} (java): agent on"), "C: agent loaded (SSLSocket server)")
    urls = [f"https://127.0.0.1:{port}/req/c{i}" for i in range(4)]
    r = subprocess.run(["curl", "-sk", "--max-time", "20", *urls], capture_output=True, text=True)
    check_eq(r.stdout.split(), ["ok", "c0", "ok", "c1", "ok", "c2", "ok", "c3"],
             "C: 4 requests on one keep-alive connection answered")
    agent.wait_spans(4, timeout=15)
    time.sleep(0.5)
    agent.stop()
    check_eq(jvm.served("c"), 4, "C: requests the server logged")
    check_eq(len(server_spans(agent.spans(), "c")), 4, "C: https SERVER spans")
    jvm.proc.stop()

    # --- D: a JVM that refuses attach ----------------------------------------------------------
    port = free_port()
    jvm = Jvm(work, "http", port, ks, "-XX:+DisableAttachMechanism")
    agent = Agent("--open-port", str(port), "-v")
    wait_log(agent, f"pid {jvm.pid} (java):", timeout=20)
    for i in range(5):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", f"/req/d{i}")
        check_eq(c.getresponse().status, 200, f"D: plain HTTP request d{i}")
        c.close()
    agent.wait_spans(5, timeout=15)
    time.sleep(0.5)
    agent.stop()
    lines = java_lines(agent, jvm.pid)
    for l in lines:
        print("     " + l.strip())
    check_eq(len(lines), 1, "D: exactly one log line from the plugin about this JVM")
    check(lines and "refuses dynamic attach" in lines[0] and "generic layer" in lines[0],
          "D: the line says it refuses attach and stays with the generic layer")
    check_eq(len(server_spans(agent.spans(), "d", scheme="http")), 5,
             "D: http SERVER spans through the generic layer")
    check_eq(jvm.served("d"), 5, "D: requests the server logged")
    check("Full thread dump" not in jvm.stdout_text(), "D: no SIGQUIT (no thread dump)")
    jvm.proc.stop()
    finish()


if __name__ == "__main__":
    main()
