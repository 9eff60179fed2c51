#!/usr/bin/env python3
"""Live: MariaDB 10.11 (Debian) with real eBPF, the sql plugin's `mysql`.

A private server (mariadb-install-db in a temp dir, mariadbd --user=mysql on
a free port) is watched by port; its clients by pid (a wrapper shell that
execs them) or by --exe-path. Counts are checked against the server's own
numbers (SHOW GLOBAL STATUS: Com_select, Com_insert, Com_stmt_execute
deltas) and the clients' own reports.

1. The mariadb client: text SELECTs, an error (42S02 / 1146), USE; SELECT
   spans == Com_select delta, on each side.
2. mysqlslap (mixed load, 4 connections; results bigger than the capture):
   SELECT and INSERT spans == Com_select and Com_insert deltas, each side;
   the client histogram count equals the client spans.
3. node mysql2 prepared statements (COM_STMT_PREPARE once, EXECUTE n
   times): SELECT spans == Com_select delta, executions == Com_stmt_execute
   delta, spans named from the prepared text, no parameter in any output.
4. node mysql2 multi-statements: one span per statement.
5. A literal in a query never appears in any output (spans, debug log,
   /metrics).
6. A connection picked up mid-stream (a statement prepared before the agent
   started): one span per execution, without text.
7. TLS requested after the greeting (mariadb --ssl): followed in plaintext.
8. Unix domain sockets: guarded until the core captures them (sonde
   --features says "unix: yes").
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

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sql_peers")
LITERAL = "TOPSECRET-91bd2e"
NUMBER = "5151515151"
USER, PASSWORD, DB = "app", "app-pw-7", "shop"


class Maria:
    """A private MariaDB instance."""

    def __init__(self):
        self.dir = workdir("mariadb")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "mysql", "mysql")
        # a certificate, so a client may ask for TLS (none does by default)
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                            cert, "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
        self.tls = r.returncode == 0
        for f in (cert, key):
            if os.path.exists(f):
                shutil.chown(f, "mysql", "mysql")
        self.port = free_port()
        self.sock = os.path.join(self.dir, "sock")
        r = subprocess.run(["mariadb-install-db", "--user=mysql", f"--datadir={self.dir}/data",
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            cannot_run("mariadb-install-db failed: " + (r.stdout + r.stderr)[-300:])
        self.proc = Proc(["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.dir}/data",
                          f"--socket={self.sock}", f"--port={self.port}", "--bind-address=127.0.0.1",
                          "--skip-name-resolve", f"--pid-file={self.dir}/pid",
                          f"--log-error={self.dir}/err.log", "--innodb-flush-log-at-trx-commit=0",
                          "--max-connections=50"] +
                         ([f"--ssl-cert={cert}", f"--ssl-key={key}"] if self.tls else []))
        wait_port(self.port, timeout=60)
        self.root(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%'; "
                  f"CREATE DATABASE {DB}; CREATE TABLE {DB}.items (id INT PRIMARY KEY, name VARCHAR(40)); "
                  f"INSERT INTO {DB}.items VALUES " + ",".join(f"({i},'n{i}')" for i in range(10)))

    def root(self, sql):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-uroot", "-N", "-e", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb {sql!r}: {r.stderr}")
        return r.stdout

    def status(self):
        out = {}
        for line in self.root("SHOW GLOBAL STATUS LIKE 'Com\\_%'").splitlines():
            k, v = line.split("\t")
            out[k] = int(v)
        return out

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)  # data files: tens of MB per run


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


def sql_spans(agent, kind=None):
    return [s for s in agent.spans() if s["scope"] == "sql" and (kind is None or s["kind"] == kind)]


def ops(spans, op, ok_only=True):
    return [s for s in spans if s["attributes"].get("db.operation.name") == op and
            (not ok_only or s["status"]["code"] != "ERROR")]


def watched_client(cmd, out, cwd=None):
    return Proc(["sh", "-c", f"read go; exec {cmd} > {out} 2>&1"], stdin=subprocess.PIPE, cwd=cwd)


def go(proc, timeout=120):
    proc.p.stdin.write(b"go\n")
    proc.p.stdin.flush()
    proc.p.wait(timeout)


def client_cmd(port, *args):
    # The 10.11 client asks for TLS by default when the server offers it;
    # the plaintext cases say no (TLS has its own case).
    return ["mariadb", "--no-defaults", "--skip-ssl", "-h", "127.0.0.1", "-P", str(port), f"-u{USER}",
            f"-p{PASSWORD}", *args]


def unix_capture_supported():
    r = subprocess.run([SONDE, "--features"], capture_output=True, text=True, timeout=30)
    return re.search(r"^unix(_sockets)?:\s+yes", r.stdout + r.stderr, re.M) is not None


def test_client(db):
    pprom = free_port()
    agent = Agent("--open-port", str(db.port), "--exe-path", "mariadb$", "--prometheus-port", str(pprom),
                  "-v", "-v")
    try:
        before = db.status()
        stmts = [f"SELECT name FROM items WHERE id IN (1, 2, {NUMBER})",
                 f"SELECT COUNT(*) FROM items WHERE name <> '{LITERAL}'",
                 f"SELECT * FROM items WHERE name = \"{LITERAL}\"",
                 "SELECT * FROM no_such_table",
                 f"UPDATE items SET name = '{LITERAL}' WHERE id = 99"]
        for s in stmts:
            subprocess.run(client_cmd(db.port, DB, "-e", s), capture_output=True, timeout=30)
        # USE (COM_INIT_DB) after connecting without a database
        subprocess.run(client_cmd(db.port, "-e", f"USE {DB}; SELECT 1"), capture_output=True, timeout=30)
        after = db.status()
        agent.wait_spans(2 * 7, timeout=10, pred=lambda s: s["scope"] == "sql")
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
    spans = sql_spans(agent)
    n_select = delta(before, after, "Com_select")
    for kind in ("SERVER", "CLIENT"):
        mine = [s for s in spans if s["kind"] == kind]
        check_eq(len(ops(mine, "SELECT", ok_only=False)), n_select,
                 f"mariadb client {kind}: SELECT spans == Com_select delta")
        err = [s for s in mine if s["status"]["code"] == "ERROR"]
        check_eq([(s["attributes"].get("error.type"), s["attributes"].get("db.response.status_code")) for s in err],
                 [("42S02", "1146")], f"mariadb client {kind}: the error carries SQLSTATE and error number")
        check(all(s["attributes"].get("db.system") == "mariadb" for s in mine), f"{kind}: db.system=mariadb")
        use = [s for s in mine if s["attributes"].get("db.query.text") == "SELECT ?"]
        check(len(use) == 1 and use[0]["attributes"].get("db.namespace") == DB,
              f"{kind}: db.namespace after USE (COM_INIT_DB)")
    everything = "\n".join(agent.lines) + agent.stderr_text() + metrics
    check(LITERAL not in everything and NUMBER not in everything and PASSWORD not in everything,
          f"no literal or password in any output ({len(agent.lines)} span lines, "
          f"{len(agent.stderr_text())} log bytes, {len(metrics)} metric bytes)")
    check(any(s["attributes"].get("db.query.text") == "SELECT name FROM items WHERE id IN (?)" for s in spans),
          "the IN list is collapsed and sanitised")


def test_mysqlslap(db, d):
    out = os.path.join(d, "slap.out")
    pprom = free_port()
    cl = watched_client(f"mysqlslap --no-defaults --skip-ssl -h 127.0.0.1 -P {db.port} -u{USER} -p{PASSWORD} "
                        "--auto-generate-sql --auto-generate-sql-load-type=mixed --concurrency=4 "
                        "--number-of-queries=600 --iterations=1", out)
    agent = Agent("--open-port", str(db.port), "--pid", str(cl.pid), "--prometheus-port", str(pprom), "-v")
    try:
        before = db.status()
        go(cl)
        after = db.status()
        n_sel, n_ins = delta(before, after, "Com_select"), delta(before, after, "Com_insert")
        agent.wait_spans(2 * (n_sel + n_ins), timeout=15, pred=lambda s: s["scope"] == "sql" and
                         s["attributes"].get("db.operation.name") in ("SELECT", "INSERT"))
        time.sleep(0.5)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
    finally:
        agent.stop()
    with open(out) as f:
        slap = f.read()
    check("Average number of seconds" in slap, f"mysqlslap ran ({slap.strip()[-200:]})")
    spans = sql_spans(agent)
    check(n_sel > 50 and n_ins > 50, f"mysqlslap: Com_select +{n_sel}, Com_insert +{n_ins}")
    for kind in ("SERVER", "CLIENT"):
        mine = [s for s in spans if s["kind"] == kind]
        check_eq(len(ops(mine, "SELECT")), n_sel, f"mysqlslap {kind}: SELECT spans == Com_select delta")
        check_eq(len(ops(mine, "INSERT")), n_ins, f"mysqlslap {kind}: INSERT spans == Com_insert delta")
    n_client = len(sql_spans(agent, "CLIENT"))
    check_eq(int(prom_sum(metrics, "db_client_operation_duration_seconds_count")), n_client,
             "db.client.operation.duration count == client spans")
    m = re.search(r"(\d+) finished from their tail, (\d+) ended at the next request", agent.stderr_text())
    check(m is not None, f"big results cut by the capture are counted ({m.group(0) if m else ''})")


def node(script, *args):
    return ["node", script, str(args[0]), USER, PASSWORD, DB, *map(str, args[1:])]


def test_prepared(db, d):
    out = os.path.join(d, "prep.out")
    cl = watched_client(" ".join(node("mysql_prepared.js", db.port, 200)), out, cwd=PEERS)
    agent = Agent("--open-port", str(db.port), "--pid", str(cl.pid), "-v", "-v")
    try:
        before = db.status()
        go(cl)
        after = db.status()
        agent.wait_spans(2 * 206, timeout=15, pred=lambda s: s["scope"] == "sql")
        time.sleep(0.5)
    finally:
        agent.stop()
    with open(out) as f:
        report = f.read().strip()
    try:
        rep = json.loads(report)
    except ValueError:
        check(False, f"mysql2 client report: {report[-300:]}")
        return
    spans = sql_spans(agent)
    n_sel, n_exec = delta(before, after, "Com_select"), delta(before, after, "Com_stmt_execute")
    check_eq((rep["selects"], rep["inserts"], rep["errors"]), (200, 5, 1), "mysql2 ran its statements")
    # The status queries themselves (SHOW over the unix socket) are spans
    # of mariadbd too: not the client's.
    spans = [s for s in spans if s["attributes"].get("network.transport") != "unix"]
    for kind in ("SERVER", "CLIENT"):
        mine = [s for s in spans if s["kind"] == kind]
        sel = ops(mine, "SELECT")
        check_eq(len(sel), n_sel, f"mysql2 {kind}: SELECT spans == Com_select delta")
        check_eq(len([s for s in mine if s["status"]["code"] != "ERROR"]), n_exec,
                 f"mysql2 {kind}: spans == Com_stmt_execute delta")
        check(all(s["attributes"].get("db.query.text") == "SELECT name FROM items WHERE id = ?" and
                  s["name"] == "SELECT items" for s in sel), f"mysql2 {kind}: spans named from the prepared text")
        err = [s for s in mine if s["status"]["code"] == "ERROR"]
        check_eq([(s["attributes"].get("error.type"), s["attributes"].get("db.response.status_code")) for s in err],
                 [(rep["sqlstate"], str(rep["error_code"]))], f"mysql2 {kind}: the failed prepare's error")
    everything = "\n".join(agent.lines) + agent.stderr_text()
    check("secret-" not in everything, "no parameter value in any output")


def test_multi(db, d):
    out = os.path.join(d, "multi.out")
    cl = watched_client(" ".join(node("mysql_multi.js", db.port, 20)), out, cwd=PEERS)
    agent = Agent("--open-port", str(db.port), "--pid", str(cl.pid))
    try:
        before = db.status()
        go(cl)
        after = db.status()
        agent.wait_spans(2 * 60, timeout=10, pred=lambda s: s["scope"] == "sql")
        time.sleep(0.3)
    finally:
        agent.stop()
    spans = sql_spans(agent)
    for kind in ("SERVER", "CLIENT"):
        names = collections.Counter(s["name"] for s in spans if s["kind"] == kind)
        check_eq((names["SELECT items"], names["UPDATE items"]), (2 * 20, 20),
                 f"multi-statements {kind}: one span per statement")
        check_eq(names["SELECT items"], delta(before, after, "Com_select"), f"multi {kind}: == Com_select delta")


class Node:
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


def test_midstream(db):
    n = Node(node("mysql_midstream.js", db.port, 40)[1:])
    try:
        check_eq(n.readline(), "ready", "mysql2 prepared its statement before the agent started")
        agent = Agent("--open-port", str(db.port), "--pid", str(n.pid), "-v")
        try:
            before = db.status()
            out, err = n.finish()
            after = db.status()
            agent.wait_spans(80, timeout=10, pred=lambda s: s["scope"] == "sql")
        finally:
            agent.stop()
    finally:
        n.stop()
    check_eq(out, '{"executed":40}', f"mysql2 executed 40 times ({err.strip()[-200:]})")
    # The status queries themselves (SHOW over the unix socket) are spans
    # of mariadbd too: not the client's.
    spans = [s for s in sql_spans(agent) if s["attributes"].get("network.transport") != "unix"]
    n_exec = delta(before, after, "Com_stmt_execute")
    mine = [s for s in spans if s["kind"] == "CLIENT"]
    check_eq(len(mine), n_exec, "mid-stream CLIENT: one span per execution (== Com_stmt_execute delta)")
    check(all("db.query.text" not in s["attributes"] and s["attributes"].get("db.response.returned_rows") == 1
              and s["name"] == "mysql" for s in mine), "mid-stream CLIENT: statement unknown, no text, rows counted")
    # mariadbd reads each packet's header and its payload in two reads: the
    # server side finds its first command across them.
    srv = [s for s in spans if s["kind"] == "SERVER"]
    check_eq(len(srv), n_exec, "mid-stream SERVER: one span per execution (== Com_stmt_execute delta)")
    check(all("db.query.text" not in s["attributes"] and s["attributes"].get("db.response.returned_rows") == 1
              and s["name"] == "mariadb" for s in srv),
          "mid-stream SERVER: statement unknown, no text, rows counted, db.system from the executable")


def test_tls(db):
    """A client asking for TLS after the greeting (SSL request): the
    plaintext the core hands from the TLS library after it is followed,
    starting with the handshake response (the database)."""
    if not db.tls:
        check(False, "openssl could not make a certificate")
        return
    n = Node(["tls_client.js", "mysql", str(db.port), USER, PASSWORD, DB, "5"])
    try:
        check_eq(n.readline(), "ready", "node mysql2 TLS client started")
        agent = Agent("--open-port", str(db.port), "--pid", str(n.pid), "-v")
        try:
            out, err = n.finish()
            agent.wait_spans(10, timeout=10, pred=lambda s: s["scope"] == "sql")
            time.sleep(0.3)
        finally:
            agent.stop()
    finally:
        n.stop()
    try:
        rep = json.loads(out)
    except ValueError:
        check(False, f"TLS client: {out} {err[-300:]}")
        return
    check(rep.get("cipher", "") != "", f"mysql2 used TLS (cipher {rep.get('cipher')!r})")
    spans = [s for s in sql_spans(agent) if s["name"] == "SHOW"]
    for kind in ("SERVER", "CLIENT"):
        mine = [s for s in spans if s["kind"] == kind]
        check_eq(len(mine), 5, f"TLS {kind}: one span per query")
        check(all(s["attributes"].get("db.system") == "mariadb" for s in mine), f"TLS {kind}: db.system")
    # The server reads the handshake response inside TLS: the database. On
    # node's side the plaintext of its first SSL_write after the handshake
    # (that response) does not reach the plugin today (a core capture gap,
    # reported): the client spans are then picked up at the first command,
    # without a namespace rather than with a guessed one.
    srv_ns = {s["attributes"].get("db.namespace") for s in spans if s["kind"] == "SERVER"}
    check_eq(srv_ns, {DB}, "TLS SERVER: namespace from the handshake response sent inside TLS")
    cli_ns = {s["attributes"].get("db.namespace") for s in spans if s["kind"] == "CLIENT"}
    check(cli_ns in ({DB}, {None}), f"TLS CLIENT: namespace known or left out ({cli_ns})")
    print(f"note - TLS CLIENT namespace: {cli_ns}")
    m = re.search(r"(\d+) TLS, ", agent.stderr_text())
    check(m is not None and int(m.group(1)) == 2, f"TLS connections counted ({m.group(0) if m else None})")


def test_unix(db):
    if not unix_capture_supported():
        print("skip - unix sockets: not yet supported by core (sonde --features has no 'unix: yes')")
        return
    agent = Agent("--open-port", str(db.port), "--exe-path", "mariadb$")
    try:
        # --skip-ssl: this part is about the unix transport; a one-shot
        # client that starts TLS right after loading libssl can beat the
        # uprobe attach (docs/tls.md, Limits), and the TLS path has its own part.
        subprocess.run(["mariadb", "--no-defaults", "--skip-ssl", "-S", db.sock, f"-u{USER}",
                        f"-p{PASSWORD}", DB, "-e", "SELECT 1"], capture_output=True, timeout=30)
        agent.wait_spans(2, timeout=10, pred=lambda s: s["scope"] == "sql")
    finally:
        agent.stop()
    spans = [s for s in sql_spans(agent) if s["attributes"].get("db.query.text") == "SELECT ?"]
    kinds = sorted(s["kind"] for s in spans)
    if kinds != ["CLIENT", "SERVER"]:
        print("     all spans:", [(s["kind"], s["name"], s["resource"]["service.name"],
                                   s["attributes"].get("db.query.text")) for s in agent.spans()])
        print("     agent stderr:", agent.stderr_text()[-2500:])
    check_eq(kinds, ["CLIENT", "SERVER"], "unix socket: one span on each side")
    check(all(s["attributes"].get("network.transport") == "unix" and
              s["attributes"].get("server.address") == db.sock for s in spans),
          "unix socket: network.transport=unix, server.address = the socket path")


def main():
    require_live("mariadbd", "mariadb-install-db", "mariadb", "mysqlslap", "node", "openssl")
    if not os.path.isdir(os.path.join(PEERS, "node_modules", "mysql2")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERS, capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            cannot_run("npm ci in tests/live/sql_peers failed: " + r.stderr[-300:])
    d = workdir("mysqltest")
    db = Maria()
    try:
        test_client(db)
        test_mysqlslap(db, d)
        test_prepared(db, d)
        test_multi(db, d)
        test_midstream(db)
        test_tls(db)
        test_unix(db)
    finally:
        db.stop()
    finish()


if __name__ == "__main__":
    main()
