#!/usr/bin/env python3
"""Live: PostgreSQL 15 (Debian) with real eBPF, the sql plugin's `postgresql`.

A private server (initdb in a temp dir, run as user postgres on a free
port, pg_stat_statements loaded) is watched by port; its clients are watched
by pid (a wrapper shell that execs them) or by --exe-path. Counts are
checked against the server's own numbers (pg_stat_statements calls) and the
clients' (pgbench's transaction count).

1. pgbench -i: the COPY of pgbench_accounts is one span, 100000 rows.
2. pgbench -S with -M simple, extended and prepared: SELECT spans on
   pgbench_accounts, server side and client side, equal pg_stat_statements
   calls and pgbench's transactions; the client histogram count equals the
   client spans. pgbench's TPC-B script (-M prepared): spans per statement
   equal pg_stat_statements calls.
3. psql with literals and errors: SQLSTATE on error spans; no literal in any
   output (spans, agent log at debug level, /metrics).
4. A big result (cut by the capture) is one span with the row count. One
   row of 2 MB: once its DataRow header is read the plugin says (SDK 1.1
   skip_to) that the rest of the row is not needed, so the reads and writes
   inside it are not copied (sonde_payload_bytes_skipped_total), and the
   server side still counts its row.
5. TLS (node pg, ssl): the plaintext after the SSL answer is followed.
6. A connection picked up mid-stream (node pg with a named statement
   prepared before the agent started): one span per execution, no text.
7. Unix domain sockets: guarded until the core captures them (sonde
   --features says "unix: yes"); then psql over the socket gives spans with
   network.transport=unix.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (SONDE, Agent, Proc, cannot_run, check, check_eq, fetch, finish, free_port,
                        prom_sum, require_live, wait_port, workdir)

PGBIN = "/usr/lib/postgresql/15/bin"
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sql_peers")
LITERAL = "TOPSECRET-7f3a9c"
NUMBER = "4242424242"


def as_postgres(*args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                          timeout=120, **kw)


class Pg:
    """A private PostgreSQL 15 instance."""

    def __init__(self, ssl=None):
        self.dir = workdir("pg")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        r = as_postgres(f"{PGBIN}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres",
                        "--no-sync")
        if r.returncode != 0:
            cannot_run("initdb failed: " + r.stderr[-300:])
        opts = ["-c", "listen_addresses=127.0.0.1", "-c", "shared_preload_libraries=pg_stat_statements",
                "-c", "fsync=off", "-c", "max_connections=50", "-k", self.dir]
        if ssl:
            for src, name in zip(ssl, ("server.crt", "server.key")):
                dst = os.path.join(self.dir, "data", name)
                shutil.copy(src, dst)
                shutil.chown(dst, "postgres", "postgres")
                os.chmod(dst, 0o600)
            opts += ["-c", "ssl=on"]
        self.proc = Proc(["runuser", "-u", "postgres", "--", f"{PGBIN}/postgres", "-D",
                          f"{self.dir}/data", "-p", str(self.port), *opts])
        wait_port(self.port, timeout=30)
        for _ in range(50):
            if self.sql("SELECT 1", check_rc=False) is not None:
                break
            time.sleep(0.2)
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def sql(self, q, check_rc=True):
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                            "postgres", "-At", "-c", q], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            if check_rc:
                raise RuntimeError(f"psql {q!r}: {r.stderr}")
            return None
        return r.stdout

    def stmt_calls(self):
        """pg_stat_statements: {query text: calls} (our own queries left out)."""
        out = {}
        for line in self.sql("SELECT calls, query FROM pg_stat_statements").splitlines():
            calls, _, q = line.partition("|")
            if "pg_stat_statements" not in q:
                out[q] = out.get(q, 0) + int(calls)
        return out

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)  # data files: tens of MB per run


def sql_spans(agent, kind=None):
    return [s for s in agent.spans() if s["scope"] == "sql" and (kind is None or s["kind"] == kind)]


def by_name(spans):
    return collections.Counter(s["name"] for s in spans)


def watched_client(cmd, out):
    """A client started paused (a shell waiting on stdin, then exec), so the
    agent can watch it by pid from its first byte."""
    return Proc(["sh", "-c", f"read go; exec {cmd} > {out} 2>&1"], stdin=subprocess.PIPE)


def go(proc, timeout=120):
    proc.p.stdin.write(b"go\n")
    proc.p.stdin.flush()
    proc.p.wait(timeout)


def pgbench_txns(path):
    with open(path) as f:
        text = f.read()
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", text)
    return int(m.group(1)) if m else -1, text


def unix_capture_supported():
    """The guard for the Unix-socket cases: the core says so in --features."""
    r = subprocess.run([SONDE, "--features"], capture_output=True, text=True, timeout=30)
    return re.search(r"^unix(_sockets)?:\s+yes", r.stdout + r.stderr, re.M) is not None


def test_pgbench(pg, d):
    bench = f"pgbench -h 127.0.0.1 -p {pg.port} -U postgres"
    # ---- 1. pgbench -i: COPY is one operation ------------------------------
    out = os.path.join(d, "init.out")
    cl = watched_client(f"{bench} -i -s 1 -q postgres", out)
    agent = Agent("--open-port", str(pg.port), "--pid", str(cl.pid))
    try:
        go(cl)
        agent.wait_spans(2, timeout=10, pred=lambda s: s["name"] == "COPY pgbench_accounts")
    finally:
        agent.stop()
    copies = [s for s in sql_spans(agent) if s["name"] == "COPY pgbench_accounts"]
    check_eq(sorted(s["kind"] for s in copies), ["CLIENT", "SERVER"],
             "pgbench -i: COPY pgbench_accounts is one span on each side")
    check(all(s["attributes"].get("sonde.db.rows_affected") == 100000 for s in copies),
          "COPY spans carry the 100000 rows of the tag")

    # ---- 2. -S in the three query modes ------------------------------------
    for mode in ("simple", "extended", "prepared"):
        pg.sql("SELECT pg_stat_statements_reset()")
        out = os.path.join(d, f"bench-{mode}.out")
        pprom = free_port()
        cl = watched_client(f"{bench} -n -S -c 2 -t 300 -M {mode} postgres", out)
        agent = Agent("--open-port", str(pg.port), "--pid", str(cl.pid), "--prometheus-port", str(pprom))
        try:
            go(cl)
            txns, text = pgbench_txns(out)
            agent.wait_spans(2 * txns, timeout=15,
                             pred=lambda s: s["attributes"].get("db.collection.name") == "pgbench_accounts")
            time.sleep(0.5)
            metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        finally:
            agent.stop()
        calls = sum(v for q, v in pg.stmt_calls().items()
                    if q.startswith("SELECT abalance FROM pgbench_accounts"))
        spans = [s for s in sql_spans(agent) if s["attributes"].get("db.collection.name") == "pgbench_accounts"
                 and s["attributes"].get("db.operation.name") == "SELECT"]
        srv = [s for s in spans if s["kind"] == "SERVER"]
        cli = [s for s in spans if s["kind"] == "CLIENT"]
        check(txns == 600, f"-M {mode}: pgbench processed {txns} transactions")
        check_eq(len(srv), calls, f"-M {mode}: SERVER SELECT pgbench_accounts spans == pg_stat_statements calls")
        check_eq(len(cli), txns, f"-M {mode}: CLIENT SELECT pgbench_accounts spans == pgbench transactions")
        check(all(s["attributes"].get("db.query.text") ==
                  ("SELECT abalance FROM pgbench_accounts WHERE aid = ?;" if mode == "simple"
                   else "SELECT abalance FROM pgbench_accounts WHERE aid = $1;") for s in spans),
              f"-M {mode}: db.query.text sanitised ({spans[0]['attributes'].get('db.query.text') if spans else None})")
        check(all(s["attributes"].get("db.namespace") == "postgres" and
                  s["attributes"].get("db.system") == "postgresql" and
                  s["attributes"].get("server.port") == pg.port for s in spans),
              f"-M {mode}: db.system, db.namespace, server.port")
        check(all(s["attributes"].get("db.response.returned_rows") == 1 for s in spans),
              f"-M {mode}: returned rows from the command tag")
        # (keyed by operation only: the first plugin to register the
        # histogram decides its attribute keys, see the README)
        n_hist = int(prom_sum(metrics, "db_client_operation_duration_seconds_count", db_operation_name="SELECT"))
        n_sel = sum(1 for s in sql_spans(agent, "CLIENT") if s["attributes"].get("db.operation.name") == "SELECT")
        check_eq(n_hist, n_sel, f"-M {mode}: db.client.operation.duration count == client SELECT spans")

    # ---- the TPC-B script: every statement against pg_stat_statements -----
    pg.sql("SELECT pg_stat_statements_reset()")
    out = os.path.join(d, "bench-tpcb.out")
    cl = watched_client(f"{bench} -n -c 2 -t 100 -M prepared postgres", out)
    agent = Agent("--open-port", str(pg.port), "--pid", str(cl.pid))
    try:
        go(cl)
        txns, _ = pgbench_txns(out)
        agent.wait_spans(2 * 7 * txns, timeout=15, pred=lambda s: "pgbench" in s["name"] or
                         s["name"] in ("BEGIN", "END"))
        time.sleep(0.5)
    finally:
        agent.stop()
    calls = pg.stmt_calls()
    want = collections.Counter()
    for q, n in calls.items():
        m = re.match(r"\s*(UPDATE|INSERT INTO|SELECT .* FROM)\s+(\w+)", q, re.I)
        key = f"{m.group(1).split()[0].upper()} {m.group(2)}" if m else ""
        if key in ("UPDATE pgbench_accounts", "UPDATE pgbench_tellers", "UPDATE pgbench_branches",
                   "SELECT pgbench_accounts", "INSERT pgbench_history"):
            want[key] += n
    srv = by_name(sql_spans(agent, "SERVER"))
    cli = by_name(sql_spans(agent, "CLIENT"))
    check(txns == 200 and sum(want.values()) == 5 * txns, f"TPC-B: {txns} transactions, {dict(want)}")
    check_eq({k: srv[k] for k in want}, dict(want), "TPC-B: SERVER spans per statement == pg_stat_statements")
    check_eq({k: cli[k] for k in want}, dict(want), "TPC-B: CLIENT spans per statement == pg_stat_statements")
    # pg_stat_statements does not count BEGIN/END run as prepared statements
    check_eq((srv["BEGIN"], srv["END"], cli["BEGIN"], cli["END"]), (txns,) * 4,
             "TPC-B: BEGIN and END spans == pgbench transactions")


def test_psql(pg, d):
    pprom = free_port()
    agent = Agent("--open-port", str(pg.port), "--exe-path", "psql$", "--prometheus-port", str(pprom),
                  "-v", "-v")
    errs = {}
    try:
        queries = [
            f"SELECT '{LITERAL}' AS s, {NUMBER} AS n",
            f"SELECT * FROM pgbench_accounts WHERE filler = E'{LITERAL}\\'' OR aid IN ({NUMBER}, -1)",
            f"DO $body$ BEGIN PERFORM '{LITERAL}'; END $body$",
            f"SELECT '{LITERAL}'::int",          # 22P02, the message quotes the value
            "SELECT * FROM no_such_table",        # 42P01
            f"SELEKT '{LITERAL}'",                # 42601
        ]
        for q in queries:
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d",
                                "postgres", "-c", q], capture_output=True, text=True, timeout=30)
            errs[q] = r.returncode
        agent.wait_spans(2 * len(queries), timeout=10, pred=lambda s: s["scope"] == "sql")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
    spans = sql_spans(agent)
    client = [s for s in spans if s["kind"] == "CLIENT"]
    check_eq(len(client), len(queries), "psql: one client span per command")
    for kind in ("CLIENT", "SERVER"):
        got = {s["attributes"].get("error.type") for s in spans if s["kind"] == kind and s["status"]["code"] == "ERROR"}
        check_eq(got, {"22P02", "42P01", "42601"}, f"psql {kind}: errors carry their SQLSTATE")
    check(all(s["attributes"].get("db.response.status_code") == s["attributes"]["error.type"]
              for s in spans if s["status"]["code"] == "ERROR"), "db.response.status_code = SQLSTATE")
    everything = "\n".join(agent.lines) + agent.stderr_text() + metrics
    check(LITERAL not in everything and NUMBER not in everything,
          f"no literal in any output ({len(agent.lines)} span lines, {len(agent.stderr_text())} log bytes, "
          f"{len(metrics)} metric bytes)")
    check(any(s["attributes"].get("db.query.text") == "SELECT ? AS s, ? AS n" for s in spans),
          "the literal query's text is there, sanitised")
    test_big_result(pg)


def test_big_result(pg):
    """A result much bigger than the capture: the server writes it in 8 KiB
    buffers; with --payload-cap 16384 each of them is captured whole, so the
    chunk ending with ReadyForQuery gives the tail (CommandComplete: the
    row count). psql reads in pieces of any size, cut by the cap: when the
    tail was not captured the count is unknown and left out, never guessed.
    With the default cap, both sides are at least one span each."""
    q = "SELECT * FROM pgbench_accounts WHERE aid <= 20000"
    for cap in ("16384", "4096"):
        agent = Agent("--open-port", str(pg.port), "--exe-path", "psql$", "--payload-cap", cap)
        try:
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres",
                            "-c", q], capture_output=True, text=True, timeout=30)
            agent.wait_spans(2, timeout=10, pred=lambda s: s["scope"] == "sql")
            time.sleep(0.3)
        finally:
            agent.stop()
        big = [s for s in sql_spans(agent) if s["attributes"].get("db.query.text") ==
               "SELECT * FROM pgbench_accounts WHERE aid <= ?"]
        check_eq(sorted(s["kind"] for s in big), ["CLIENT", "SERVER"], f"cap {cap}: a big result is one span each side")
        rows = {s["kind"]: s["attributes"].get("db.response.returned_rows") for s in big}
        ok_rows = all(v in (20000, None) for v in rows.values())
        if cap == "16384":
            ok_rows = ok_rows and rows.get("SERVER") == 20000
        check(ok_rows, f"cap {cap}: rows from the tag, or left out when the tail was not captured ({rows})")


def test_big_row(pg):
    q = "SELECT repeat('x', 2000000) AS big"
    pprom = free_port()
    agent = Agent("--open-port", str(pg.port), "--exe-path", "psql$", "--prometheus-port", str(pprom))
    try:
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres",
                            "-At", "-c", q], capture_output=True, text=True, timeout=30)
        agent.wait_spans(2, timeout=10, pred=lambda s: s["scope"] == "sql")
        # skip_to lands only once the agent has read a row's header. On
        # loopback one 2 MB row can be moved before that (the agent may be
        # off the CPU for the few ms it takes), so a second query sends
        # three more, each 0.1 s after the last: by then the agent has
        # caught up, and each later row's body is skipped.
        r2 = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                             "-d", "postgres", "-At", "-c",
                             "SELECT repeat('y', 2000000) || g FROM generate_series(1, 3) g, "
                             "LATERAL (SELECT pg_sleep(0.1)) s"],
                            capture_output=True, text=True, timeout=30)
        # The agent publishes its own counters every 500 ms: wait for the
        # skipped bytes to show (or 3 s) rather than for a fixed time.
        deadline = time.time() + 3
        while True:
            time.sleep(0.3)
            metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
            if prom_sum(metrics, "sonde_payload_bytes_skipped_total") > 0 or time.time() > deadline:
                break
    finally:
        agent.stop()
    check_eq(len(r.stdout.strip()), 2000000, "psql read the 2 MB row")
    big = [s for s in sql_spans(agent) if s["attributes"].get("db.query.text") == "SELECT repeat(?, ?) AS big"]
    check_eq(sorted(s["kind"] for s in big), ["CLIENT", "SERVER"], "the 2 MB row: one span each side")
    rows = {s["kind"]: s["attributes"].get("db.response.returned_rows") for s in big}
    check(rows.get("SERVER") == 1 and rows.get("CLIENT") in (1, None),
          f"the server side counts its one row; the client's count is exact or left out ({rows})")
    skipped = int(prom_sum(metrics, "sonde_payload_bytes_skipped_total"))
    # The policy lands when the agent has read the chunk with the row's
    # header: the writes and reads made before that are copied as usual
    # (how many depends on the agent's lag), the later ones inside the row
    # are not. Nothing is skipped without skip_to. (Both queries: 8 MB each
    # way.)
    check_eq([len(l) for l in r2.stdout.split()], [2000001] * 3, "psql read the three paced 2 MB rows")
    check(0 < skipped <= 2 * 8000000, f"skip_to: {skipped} payload bytes not copied (of 2 x 8000000 moved)")


def test_tls(d):
    cert, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
    if r.returncode != 0:
        check(False, "openssl cannot make a certificate")
        return
    pg = Pg(ssl=(cert, key))
    n = Node(["tls_client.js", "pg", str(pg.port), "postgres", "5"])
    try:
        check_eq(n.readline(), "ready", "node pg TLS client started")
        agent = Agent("--open-port", str(pg.port), "--pid", str(n.pid), "-v")
        try:
            out, err = n.finish()
            agent.wait_spans(10, timeout=10, pred=lambda s: s["scope"] == "sql")
            time.sleep(0.3)
        finally:
            agent.stop()
    finally:
        n.stop()
        pg.stop()
    check_eq(out, '{"queries":5,"ssl":true}', f"node pg used TLS ({err.strip()[-200:]})")
    spans = [s for s in sql_spans(agent) if s["name"] == "SELECT pg_stat_ssl"]
    for kind in ("SERVER", "CLIENT"):
        mine = [s for s in spans if s["kind"] == kind]
        check_eq(len(mine), 5, f"TLS {kind}: one span per query, from the plaintext after the SSL answer")
        check(all(s["attributes"].get("db.namespace") == "postgres" for s in mine),
              f"TLS {kind}: namespace from the StartupMessage sent inside TLS")
    m = re.search(r"(\d+) TLS, ", agent.stderr_text())
    check(m is not None and int(m.group(1)) == 2, f"TLS connections counted ({m.group(0) if m else None})")


class Node:
    """A node client that talks on stdin/stdout."""

    def __init__(self, args):
        self.p = subprocess.Popen(["node", *args], cwd=PEERS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def readline(self):
        return self.p.stdout.readline().strip()

    def finish(self, timeout=60):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        out, err = self.p.communicate(timeout=timeout)
        return out.strip(), err

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def test_midstream(pg):
    node = Node(["pg_named.js", str(pg.port), "postgres", "50"])
    try:
        ready = node.readline()
        check_eq(ready, "ready", "node pg prepared its named statement before the agent started")
        backend = pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'sonde-midstream'").strip()
        agent = Agent("--pid", str(node.pid), "--pid", backend, "-v")
        try:
            out, err = node.finish()
            agent.wait_spans(100, timeout=10, pred=lambda s: s["scope"] == "sql")
        finally:
            agent.stop()
    finally:
        node.stop()
    spans = sql_spans(agent)
    check_eq(out, '{"executed":50}', f"node pg executed 50 times ({err.strip()[-200:]})")
    for kind in ("CLIENT", "SERVER"):
        got = [s for s in spans if s["kind"] == kind]
        check_eq(len(got), 50, f"mid-stream {kind}: one span per execution")
        check(all("db.query.text" not in s["attributes"] and s["name"] == "postgresql" and
                  s["attributes"].get("db.response.returned_rows") == 1 for s in got),
              f"mid-stream {kind}: statement unknown, no text, named after the system")
    m = re.search(r"(\d+) unknown statements", agent.stderr_text())
    check(m is not None and int(m.group(1)) == 100,
          f"the agent counts the unknown statements ({m.group(0) if m else agent.stderr_text()[-300:]})")


def test_unix(pg):
    if not unix_capture_supported():
        print("skip - unix sockets: not yet supported by core (sonde --features has no 'unix: yes')")
        return
    agent = Agent("--open-port", str(pg.port), "--exe-path", "psql$")
    try:
        subprocess.run(["psql", "-h", pg.dir, "-p", str(pg.port), "-U", "postgres", "-d", "postgres", "-c",
                        f"SELECT '{LITERAL}'"], capture_output=True, timeout=30)
        agent.wait_spans(2, timeout=10, pred=lambda s: s["scope"] == "sql")
    finally:
        agent.stop()
    spans = sql_spans(agent)
    sock = os.path.join(pg.dir, f".s.PGSQL.{pg.port}")
    check_eq(sorted(s["kind"] for s in spans), ["CLIENT", "SERVER"], "unix socket: one span on each side")
    check(all(s["attributes"].get("network.transport") == "unix" and
              s["attributes"].get("server.address") == sock for s in spans),
          "unix socket: network.transport=unix, server.address = the socket path")


def main():
    require_live(f"{PGBIN}/postgres", f"{PGBIN}/initdb", "psql", "pgbench", "runuser", "node", "openssl")
    if not os.path.isdir(os.path.join(PEERS, "node_modules", "pg")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERS, capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            cannot_run("npm ci in tests/live/sql_peers failed: " + r.stderr[-300:])
    d = workdir("pgtest")
    pg = Pg()
    try:
        test_pgbench(pg, d)
        test_psql(pg, d)
        test_big_row(pg)
        test_midstream(pg)
        test_unix(pg)
    finally:
        pg.stop()
    test_tls(d)
    finish()


if __name__ == "__main__":
    main()
