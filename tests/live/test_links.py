#!/usr/bin/env python3
"""Live: same-host links for the SQL, Redis and gRPC plugins.

Both ends of each connection are watched by one agent and nothing is added
to the applications: the server's SERVER span of a request must become the
child of the client's CLIENT span of that request (same trace_id,
parent_span_id == the client span's span_id). The two spans are matched by
the connection's endpoints and where the request starts in the byte stream
(span_set_pos); no header carries anything.

1. PostgreSQL 15: pgbench -S, -M simple and -M extended (Parse, Bind,
   Describe, Execute, Sync written together), server watched by port, the
   client from its first byte (a wrapper shell watched by pid that execs
   it). Every server SELECT pgbench_accounts span is the child of one
   client span of the same name; counted against pgbench's transactions.
2. Redis: redis-benchmark -t set,get, without and with pipelining (-P 16);
   every server GET/SET span is the child of one client span of the same
   command; counted against INFO commandstats.
3. gRPC (python3-grpcio, /usr/bin/python3, both ends watched by pid): 2
   clients x 40 unary calls over one channel each, several in flight at
   once (futures); every server span is the child of one client span of
   the same method; counted against the server's own call count.

The counts are printed (links made / requests) for each part.
"""
import collections
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, finish, free_port, require_live, wait_port,
                        workdir)
from test_pg import Pg, go, pgbench_txns, watched_client
import test_mysql


def links(spans, server_pred, client_pred):
    """(number of server spans, how many are the child of a client span of
    the same name, how many client spans were parents more than once)."""
    clients = {(s["trace_id"], s["span_id"]): s for s in spans
               if s["kind"] == "CLIENT" and client_pred(s)}
    servers = [s for s in spans if s["kind"] == "SERVER" and server_pred(s)]
    used = collections.Counter()
    ok = 0
    for s in servers:
        c = clients.get((s["trace_id"], s.get("parent_span_id", "")))
        if c is not None and c["name"] == s["name"]:
            ok += 1
            used[(c["trace_id"], c["span_id"])] += 1
    return len(servers), ok, sum(1 for v in used.values() if v > 1)


def report(what, n_req, n_srv, n_cli, ok, twice):
    print(f"note - {what}: {ok} links / {n_req} requests "
          f"({n_srv} server spans, {n_cli} client spans)")
    check_eq(n_srv, n_req, f"{what}: one server span per request")
    check_eq(n_cli, n_req, f"{what}: one client span per request")
    check_eq(ok, n_req, f"{what}: every server span is the child of the client span of its request")
    check_eq(twice, 0, f"{what}: no client span is the parent of two server spans")


# ---- 1. PostgreSQL ------------------------------------------------------------

def part_pg():
    pg = Pg()
    d = workdir("links-pg")
    try:
        pg.sql("CREATE TABLE IF NOT EXISTS pgbench_accounts (aid int PRIMARY KEY, abalance int)")
        pg.sql("INSERT INTO pgbench_accounts SELECT g, 0 FROM generate_series(1, 100000) g "
               "ON CONFLICT DO NOTHING")
        for mode in ("simple", "extended"):
            out = os.path.join(d, f"bench-{mode}.out")
            # -n: no vacuum of tables we did not create; a custom script
            # keeps to one table
            script = os.path.join(d, "select.sql")
            with open(script, "w") as f:
                f.write("\\set aid random(1, 100000)\n"
                        "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n")
            os.chmod(d, 0o755)
            os.chmod(script, 0o644)
            cl = watched_client(f"pgbench -h 127.0.0.1 -p {pg.port} -U postgres -n -c 2 -t 150 "
                                f"-M {mode} -f {script} postgres", out)
            agent = Agent("--open-port", str(pg.port), "--pid", str(cl.pid))
            try:
                go(cl)
                txns, text = pgbench_txns(out)
                agent.wait_spans(2 * max(txns, 1), timeout=15,
                                 pred=lambda s: s["name"] == "SELECT pgbench_accounts")
                time.sleep(0.5)
            finally:
                agent.stop()
            check(txns == 300, f"pg -M {mode}: pgbench processed {txns} transactions")
            spans = [s for s in agent.spans() if s["scope"] == "sql"]
            sel = lambda s: s["name"] == "SELECT pgbench_accounts"
            n_srv, ok, twice = links(spans, sel, sel)
            n_cli = sum(1 for s in spans if s["kind"] == "CLIENT" and sel(s))
            report(f"PostgreSQL pgbench -M {mode}", txns, n_srv, n_cli, ok, twice)
    finally:
        pg.stop()


# ---- 1b. MariaDB (one process, threads: the server accepts its connections) ---

def part_mysql():
    db = test_mysql.Maria()
    d = workdir("links-mysql")
    try:
        out = os.path.join(d, "slap.out")
        cl = test_mysql.watched_client(
            f"mysqlslap --no-defaults --skip-ssl -h 127.0.0.1 -P {db.port} -u{test_mysql.USER} "
            f"-p{test_mysql.PASSWORD} --auto-generate-sql --auto-generate-sql-load-type=mixed "
            "--concurrency=2 --number-of-queries=300 --iterations=1", out)
        agent = Agent("--open-port", str(db.port), "--pid", str(cl.pid))
        try:
            before = db.status()
            test_mysql.go(cl)
            after = db.status()
            n_req = sum(test_mysql.delta(before, after, k) for k in ("Com_select", "Com_insert"))
            agent.wait_spans(2 * n_req, timeout=15, pred=lambda s: s["scope"] == "sql" and
                             s["attributes"].get("db.operation.name") in ("SELECT", "INSERT"))
            time.sleep(0.5)
        finally:
            agent.stop()
    finally:
        db.stop()
    spans = [s for s in agent.spans() if s["scope"] == "sql"]
    op = lambda s: s["attributes"].get("db.operation.name") in ("SELECT", "INSERT")
    n_srv, ok, twice = links(spans, op, op)
    n_cli = sum(1 for s in spans if s["kind"] == "CLIENT" and op(s))
    report("MariaDB mysqlslap (Com_select + Com_insert)", n_req, n_srv, n_cli, ok, twice)


# ---- 2. Redis -----------------------------------------------------------------

def commandstats(port):
    r = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True,
                       text=True, timeout=30)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = dict(kv.split("=") for kv in rest.split(","))
            out[name.split("|")[0].upper()] = int(fields["calls"])
    return out


def part_redis():
    rport = free_port()
    d = workdir("links-redis")
    server = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", d])
    wait_port(rport)
    try:
        for pipe in (1, 16):
            bench = Proc(["sh", "-c", f"read go; exec redis-benchmark -p {rport} -P {pipe} -c 2 "
                          f"-n 400 -t set,get -q"], stdin=subprocess.PIPE)
            agent = Agent("--open-port", str(rport), "--pid", str(bench.pid))
            try:
                before = commandstats(rport)
                bench.p.stdin.write(b"go\n")
                bench.p.stdin.flush()
                bench.p.wait(120)
                after = commandstats(rport)
                n_req = sum(after.get(k, 0) - before.get(k, 0) for k in ("GET", "SET"))
                agent.wait_spans(2 * n_req, timeout=15,
                                 pred=lambda s: s["attributes"].get("db.operation.name") in ("GET", "SET"))
                time.sleep(0.5)
            finally:
                agent.stop()
                bench.stop()
            spans = [s for s in agent.spans() if s["scope"] == "redis"]
            cmd = lambda s: s["attributes"].get("db.operation.name") in ("GET", "SET")
            n_srv, ok, twice = links(spans, cmd, cmd)
            n_cli = sum(1 for s in spans if s["kind"] == "CLIENT" and cmd(s))
            report(f"Redis redis-benchmark -P {pipe} (INFO commandstats GET+SET)", n_req, n_srv,
                   n_cli, ok, twice)
    finally:
        server.stop()


# ---- 3. gRPC ------------------------------------------------------------------

GRPC_SERVER = r'''
import sys, threading, grpc
from concurrent import futures
calls = [0]
lock = threading.Lock()
def echo(req, ctx):
    with lock:
        calls[0] += 1
    return req
def count(req, ctx):
    return str(calls[0]).encode()
h = grpc.method_handlers_generic_handler("links.Echo", {
    "Say": grpc.unary_unary_rpc_method_handler(echo),
    "Count": grpc.unary_unary_rpc_method_handler(count)})
s = grpc.server(futures.ThreadPoolExecutor(8))
s.add_generic_rpc_handlers((h,))
s.add_insecure_port("127.0.0.1:" + sys.argv[1])
s.start()
print("ready", flush=True)
s.wait_for_termination()
'''

GRPC_CLIENT = r'''
import sys, grpc
sys.stdin.readline()
port, n = sys.argv[1], int(sys.argv[2])
ch = grpc.insecure_channel("127.0.0.1:" + port)
say = ch.unary_unary("/links.Echo/Say")
done = 0
for i in range(0, n, 8):   # eight in flight at a time on one connection
    fs = [say.future(b"x%d" % j, timeout=10) for j in range(i, min(n, i + 8))]
    done += sum(1 for f in fs if f.result())
print("calls", done, flush=True)
'''


def part_grpc():
    py = "/usr/bin/python3"
    if subprocess.run([py, "-c", "import grpc"], capture_output=True).returncode != 0:
        print("note - gRPC part skipped: python3-grpcio is not importable from /usr/bin/python3")
        return
    d = workdir("links-grpc")
    port = free_port()
    for name, src in (("server.py", GRPC_SERVER), ("client.py", GRPC_CLIENT)):
        with open(os.path.join(d, name), "w") as f:
            f.write(src)
    server = Proc([py, os.path.join(d, "server.py"), str(port)])
    wait_port(port, timeout=30)
    clients = [subprocess.Popen([py, os.path.join(d, "client.py"), str(port), "40"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    args = ["--pid", str(server.pid)]
    for c in clients:
        args += ["--pid", str(c.pid)]
    agent = Agent(*args)
    done = 0
    try:
        for c in clients:
            c.stdin.write("go\n")
            c.stdin.flush()
        for c in clients:
            out, _ = c.communicate(timeout=60)
            done += int(out.split()[-1]) if out.startswith("calls") else 0
        r = subprocess.run([py, "-c", "import grpc,sys; ch=grpc.insecure_channel('127.0.0.1:%d'); "
                            "print(ch.unary_unary('/links.Echo/Count')(b'', timeout=10).decode())"
                            % port], capture_output=True, text=True, timeout=30)
        served = int(r.stdout.strip() or -1)
        agent.wait_spans(2 * done, timeout=15, pred=lambda s: s["name"] == "links.Echo/Say")
        time.sleep(0.5)
    finally:
        agent.stop()
        server.stop()
        for c in clients:
            if c.poll() is None:
                c.kill()
    check_eq(done, 80, "gRPC: the clients made 80 calls")
    check_eq(served, done, "gRPC: the server counted every call")
    spans = [s for s in agent.spans() if s["scope"] == "grpc"]
    say = lambda s: s["name"] == "links.Echo/Say"
    n_srv, ok, twice = links(spans, say, say)
    n_cli = sum(1 for s in spans if s["kind"] == "CLIENT" and say(s))
    report("gRPC unary, 8 in flight per connection (server's call count)", served, n_srv, n_cli,
           ok, twice)


def main():
    require_live("pgbench", "psql", "mariadbd", "mysqlslap", "redis-server", "redis-cli",
                 "redis-benchmark")
    part_pg()
    part_mysql()
    part_redis()
    part_grpc()
    finish()


if __name__ == "__main__":
    main()
