#!/usr/bin/env python3
"""Live: Redis with real eBPF, and the plugin author's kit.

1. redis-benchmark with pipelining (-P 16) against redis-server: server spans
   (redis-server watched by port) and client spans (redis-benchmark watched
   from its first byte: a wrapper shell is watched by pid, then execs it)
   must equal redis-server's own INFO commandstats, command by command, and
   db_client_operation_duration_seconds_count must equal the client spans.
2. A pub/sub session: SUBSCRIBE is one span, pushes are none.
3. Per-service enablement: with `protocols: [http]` the same traffic gives
   no span at all; with `protocols: [redis]` it does.
4. Drop-in: sdk/template built out of tree with pkg-config, copied into a
   plugin directory while the agent runs, is loaded and produces spans.
5. Values of 1 MB (redis-benchmark -d 1000000): spans per command ==
   INFO commandstats on both sides, and (SDK 1.1 skip_to) part of the
   value bytes are not copied (sonde_payload_bytes_skipped_total > 0).
"""
import collections
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (BUILD, SRC, Agent, Proc, check, check_eq, fetch, finish, free_port,
                        prom_sum, require_live, wait_port, workdir)

LINE_SERVER = r'''
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            verb = line.split()[0].decode() if line.split() else ""
            self.wfile.write(b"ERR unknown\n" if verb == "BOOM" else b"OK " + verb.encode() + b"\n")
            self.wfile.flush()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30)
    return r.stdout


def commandstats(port):
    out = {}
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = dict(kv.split("=") for kv in rest.split(","))
            # "config|get" is CONFIG's subcommand: spans name the command
            top = name.split("|")[0].upper()
            out[top] = out.get(top, 0) + int(fields["calls"])
    return out


def span_counts(spans, kind):
    return collections.Counter(s["attributes"]["db.operation.name"] for s in spans
                               if s["kind"] == kind and s["scope"] == "redis")


def big_values(rport):
    pprom = free_port()
    bench = Proc(["sh", "-c", f"read go; exec redis-benchmark -p {rport} -c 1 -n 30 -d 1000000 "
                  f"-t set,get -q"], stdin=subprocess.PIPE)
    agent = Agent("--open-port", str(rport), "--pid", str(bench.pid), "--prometheus-port", str(pprom))
    try:
        before = commandstats(rport)
        bench.p.stdin.write(b"go\n")
        bench.p.stdin.flush()
        bench.p.wait(120)
        after = commandstats(rport)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("SET", "GET")}
        agent.wait_spans(2 * sum(delta.values()), timeout=15,
                         pred=lambda s: s["attributes"].get("db.operation.name") in ("SET", "GET"))
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
        bench.stop()
    spans = agent.spans()
    for kind in ("SERVER", "CLIENT"):
        c = span_counts(spans, kind)
        check_eq({k: c.get(k, 0) for k in delta}, delta, f"1 MB values: {kind} spans == INFO commandstats")
    skipped = int(prom_sum(metrics, "sonde_payload_bytes_skipped_total"))
    moved = 2 * 1000000 * sum(delta.values())
    check(0 < skipped <= moved, f"value bytes not copied (skip_to): {skipped} of {moved} moved")


def main():
    require_live("redis-server", "redis-cli", "redis-benchmark", "make", "pkg-config")
    rport, pprom = free_port(), free_port()
    d = workdir("redis")
    server = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", d])
    wait_port(rport)
    try:
        # ---- 1. pipelined benchmark, server and client watched ------------
        bench = Proc(["sh", "-c", f"read go; exec redis-benchmark -p {rport} -P 16 -c 4 -n 4000 "
                      f"-t set,get,incr,lpush -q"], stdin=subprocess.PIPE)
        agent = Agent("--open-port", str(rport), "--pid", str(bench.pid),
                      "--prometheus-port", str(pprom))
        try:
            before = commandstats(rport)
            bench.p.stdin.write(b"go\n")
            bench.p.stdin.flush()
            bench.p.wait(120)
            after = commandstats(rport)
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            delta = {k: v for k, v in delta.items() if v and k != "INFO"}
            total = sum(delta.values())
            agent.wait_spans(2 * total, timeout=15,
                             pred=lambda s: s["attributes"].get("db.operation.name") != "INFO")
            time.sleep(0.5)
            metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        finally:
            agent.stop()
            bench.stop()
        spans = agent.spans()
        srv, cl = span_counts(spans, "SERVER"), span_counts(spans, "CLIENT")
        srv.pop("INFO", None)
        check(total >= 16000, f"redis-benchmark sent {total} commands ({delta})")
        check_eq(dict(srv), delta, "server spans per command == INFO commandstats")
        check_eq(dict(cl), delta, "client spans per command == INFO commandstats")
        n_client = sum(cl.values())
        check_eq(int(prom_sum(metrics, "db_client_operation_duration_seconds_count")), n_client,
                 "db_client_operation_duration_seconds_count == client spans")
        check_eq(int(prom_sum(metrics, "db_client_operation_duration_seconds_count",
                              db_operation_name="SET")), delta.get("SET", 0), "SET histogram count")
        redis_spans = [s for s in spans if s["scope"] == "redis"]
        check(all(s["attributes"].get("db.system.name") == "redis" for s in redis_spans), "db.system.name=redis")
        check(all(s["attributes"].get("server.port") == rport for s in redis_spans), "server.port")
        check(all(s["name"] == s["attributes"]["db.operation.name"] for s in redis_spans), "span name = command")
        check(not any("db.query.text" in s["attributes"] for s in redis_spans), "no query text by default")
        check(any(s["resource"]["service.name"] == "redis-server" for s in redis_spans),
              "redis-server's service.name is its own name")
        check(any(s["resource"]["service.name"] == "redis-benchmark" for s in redis_spans),
              "the exec'd client is renamed redis-benchmark")

        # ---- 2. pub/sub, errors, SELECT -----------------------------------
        agent = Agent("--open-port", str(rport))
        try:
            before = commandstats(rport)
            sub = Proc(["redis-cli", "-p", str(rport), "SUBSCRIBE", "ch1", "ch2", "ch3"])
            time.sleep(0.5)
            for i in range(3):
                cli(rport, "PUBLISH", "ch1", f"hello {i}")
            cli(rport, "PUBLISH", "ch2", "x")
            cli(rport, "LPUSH", "errkey", "a")
            cli(rport, "INCR", "errkey")              # WRONGTYPE error reply
            cli(rport, "-n", "3", "SET", "k3", "v")   # SELECT 3 then SET
            time.sleep(0.5)
            after = commandstats(rport)
            sub.stop()
            time.sleep(0.3)
        finally:
            agent.stop()
        spans = [s for s in agent.spans() if s["scope"] == "redis"]
        c = span_counts(spans, "SERVER")
        check_eq(c.get("SUBSCRIBE", 0), after["SUBSCRIBE"] - before.get("SUBSCRIBE", 0),
                 "one SUBSCRIBE span for 3 channels (pushes are not replies)")
        check_eq(c.get("PUBLISH", 0), 4, "PUBLISH spans")
        errs = [s for s in spans if s["status"]["code"] == "ERROR"]
        check(len(errs) == 1 and errs[0]["attributes"].get("error.type") == "WRONGTYPE",
              "error reply -> ERROR with error.type=WRONGTYPE")
        sets = [s for s in spans if s["name"] == "SET"]
        check(len(sets) == 1 and sets[0]["attributes"].get("db.namespace") == "3",
              "db.namespace after SELECT")

        # ---- 5. big values: skip_to --------------------------------------
        big_values(rport)

        # ---- 3. per-service enablement -------------------------------------
        for protos, want in (("[http]", 0), ("[http, redis]", 5)):
            cfg = os.path.join(d, "svc.yaml")
            with open(cfg, "w") as f:
                f.write(f"services:\n  - name: cache\n    open_ports: [{rport}]\n    protocols: {protos}\n")
            agent = Agent("--config", cfg)
            try:
                for i in range(5):
                    cli(rport, "SET", f"k{i}", "v")
                time.sleep(0.5)
            finally:
                agent.stop()
            got = [s for s in agent.spans() if s["name"] == "SET"]
            check_eq(len(got), want, f"protocols: {protos} -> SET spans")
            if got:
                check(all(s["resource"]["service.name"] == "cache" for s in got), "service.name from config")

        # ---- short-lived clients chosen by --exe-path ------------------------
        # Each redis-cli lives a few ms: the kernel watches every new program
        # until discovery has matched its path, so none of them is missed,
        # and a program that does not match (curl) gives nothing.
        agent = Agent("--exe-path", "redis-cli$")
        try:
            for i in range(10):
                cli(rport, "SET", f"short{i}", "v")
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{rport}/"], timeout=10)
            time.sleep(0.5)
        finally:
            agent.stop()
        got = agent.spans()
        check_eq(sorted(s["name"] for s in got), ["SET"] * 10,
                 "10 short-lived redis-cli processes by --exe-path -> 10 client spans, curl none")
        check(all(s["kind"] == "CLIENT" and s["resource"]["service.name"] == "redis-cli" for s in got),
              "client spans named after redis-cli")
    finally:
        server.stop()

    # ---- 4. drop-in plugin built out of tree from the template -------------
    tdir = workdir("template")
    shutil.copytree(os.path.join(SRC, "sdk", "template"), os.path.join(tdir, "src"))
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD, "pkgconfig"))
    r = subprocess.run(["make", "-C", os.path.join(tdir, "src")], env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"template builds out of tree ({r.stderr.strip()[-200:]})")
    so = os.path.join(tdir, "src", "example.so")
    drop = os.path.join(tdir, "plugins")
    os.makedirs(drop)
    lport = free_port()
    line_py = os.path.join(tdir, "line_server.py")
    with open(line_py, "w") as f:
        f.write(LINE_SERVER)
    line = Proc([sys.executable, line_py, str(lport)])
    wait_port(lport)
    agent = Agent("--plugin-dir", drop, "--open-port", str(lport), "--protocols", "line")
    try:
        # a connection before the drop-in: not ours, and it must not matter
        s0 = socket.create_connection(("127.0.0.1", lport))
        s0.sendall(b"PING\n")
        s0.recv(100)
        shutil.copy(so, os.path.join(drop, "example.tmp"))
        os.rename(os.path.join(drop, "example.tmp"), os.path.join(drop, "example.so"))
        end = time.time() + 5
        while time.time() < end and "loaded plugin example" not in agent.stderr_text():
            time.sleep(0.1)
        check("loaded plugin example" in agent.stderr_text(), "dropped-in plugin loaded without a restart")
        # a bad file dropped in is refused, the agent goes on
        with open(os.path.join(drop, "junk.so"), "w") as f:
            f.write("not a plugin")
        time.sleep(0.5)
        s = socket.create_connection(("127.0.0.1", lport))
        s.sendall(b"PING\nECHO hi\nBOOM\n")
        buf = b""
        while buf.count(b"\n") < 3:
            buf += s.recv(100)
        s.close()
        s0.close()
        got = agent.wait_spans(3, timeout=5, pred=lambda x: x["scope"] == "example")
    finally:
        rc = agent.stop()
        line.stop()
    check("junk.so" in agent.stderr_text() and "refused" in agent.stderr_text(), "junk.so refused clearly")
    check_eq(rc, 0, "agent survived the bad drop-in")
    names = sorted(s["name"] for s in got)
    check_eq(names, ["BOOM", "ECHO", "PING"], "template plugin spans on a new connection")
    finish()


if __name__ == "__main__":
    main()
