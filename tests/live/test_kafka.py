#!/usr/bin/env python3
"""Live: Kafka with real eBPF, both sides of the wire.

The broker is librdkafka's mock cluster (tests/live/kafka_peers/
kafka_mock_broker.c, built into build/tests/live/), which speaks the real
Kafka protocol over TCP; it is watched by port (SERVER spans) and logs what it
answered (-d: "Sending ProduceResponseV7"). The clients are kcat (Debian),
watched by --exe-path 'kcat$', and kafkajs (npm), watched from its first byte
(a wrapper shell is watched by pid, then execs node).

1. kcat -P: 300 messages, linger.ms=5 and batch.num.messages=40 so that
   several ProduceRequests go out; the broker answers the first two with
   NOT_LEADER_OR_FOLLOWER and kcat retries them. PRODUCER spans == the
   ProduceRequests kcat logged (-d protocol), SERVER "send" spans == the same
   == the ProduceResponses the broker logged; error spans == the "Not leader"
   errors kcat logged, with error.type; the messages of the spans without
   error add up to 300.
2. kcat -P -X acks=0 to partition 1 of a 3-partition topic: spans end with
   the request, partition id "1". (The mock answers acks=0 requests, which a
   real broker never does: that answer is ignored, no span changes.)
3. kcat -C -e with small fetches: CONSUMER spans == the fetch responses that
   brought messages (kcat -d fetch: "Enqueue N message(s)"), with the same
   counts in the same order; SERVER "receive" spans likewise.
4. kafkajs: 100 messages in 5 sends, then a consumer group reads them back:
   PRODUCER spans == the Produce requests kafkajs logged, CONSUMER spans carry
   the 100 messages, the broker's spans match.
5. Large messages (each request and fetch response bigger than the
   capture): one span each, counts right or left out; garbage, a truncated
   frame and hostile sizes sent to the broker do not hurt the agent.
6. messaging_client_operation_duration_seconds_count == client spans.
7. SDK 1.1 counters (semconv v1.28.0 names): messaging.client.sent.messages
   of topic orders without error == the 300 messages kcat produced, those
   with error.type == the messages of the rejected requests;
   messaging.client.consumed.messages == the 300 kcat consumed and the 100
   kafkajs consumed; every client span's count is in a counter.
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (BUILD, Agent, Proc, cannot_run, check, check_eq, fetch, finish,
                        free_port, prom_sum, require_live, workdir)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka_peers")
BROKER = os.path.join(BUILD, "tests", "live", "kafka_mock_broker")


def start_broker(d, *args):
    out = os.path.join(d, "broker.out")
    err = os.path.join(d, "broker.err")
    p = subprocess.Popen([BROKER, "-d", *args], stdout=open(out, "w"), stderr=open(err, "w"),
                         start_new_session=True)
    end = time.time() + 10
    while time.time() < end:
        m = re.search(r"bootstrap=(\S+)", open(out).read())
        if m:
            return p, m.group(1), err
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("mock broker printed no bootstrap address")


def kcat(args, stdin=None, timeout=60):
    r = subprocess.run(["kcat", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"kcat {args} failed: {r.stderr[-500:]}")
    return r


def hostile(port):
    """Garbage, a truncated request, a hostile size prefix and hostile
    lengths inside a plausible frame, each on its own connection to the
    watched broker."""
    import socket
    import struct
    bad = [
        bytes(range(256)) * 8,
        b"\x00\x00\x00\x40\x00\x00\x00\x07\x00\x00\x00\x01\x00\x03abc",  # cut short
        b"\x7f\xff\xff\xff" + b"\x00" * 60,
        struct.pack(">ihhih", 30, 0, 7, 9, 1) + b"x" + struct.pack(">hhii", -1, 1, 1000, 0x7fffffff) + b"z" * 8,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for b in bad:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(b)
                time.sleep(0.1)
        except OSError:
            pass


def spans_of(spans, kind, prefix):
    return [s for s in spans if s["scope"] == "kafka" and s["kind"] == kind
            and s["name"].startswith(prefix)]


def count(s):
    return s["attributes"].get("messaging.batch.message_count")


def ensure_kafkajs():
    if os.path.isdir(os.path.join(PEERS, "node_modules", "kafkajs")):
        return
    if not shutil.which("npm"):
        cannot_run("npm is not installed (kafkajs)")
    r = subprocess.run(["npm", "ci", "--prefix", PEERS, "--no-audit", "--no-fund"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        cannot_run(f"npm ci for kafkajs failed: {r.stderr[-300:]}")


def main():
    require_live("kcat", "node", BROKER)
    ensure_kafkajs()
    d = workdir("kafka")
    broker, bootstrap, broker_log = start_broker(d, "-t", "orders:1", "-t", "audit:3",
                                                 "-t", "kjs:1", "-t", "big:1", "-e", "0:2:6")
    port = bootstrap.rsplit(":", 1)[1]
    pprom = free_port()
    kjs_out = os.path.join(d, "kafkajs.out")
    kjs = Proc(["sh", "-c", f"read go; cd {PEERS}; exec node kafkajs_client.js {bootstrap} kjs 100 20 {kjs_out}"],
               stdin=subprocess.PIPE, env={"KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    try:
        agent = Agent("--open-port", port, "--exe-path", "kcat$", "--pid", str(kjs.pid),
                      "--prometheus-port", str(pprom))
        try:
            msgs = "".join(f"m{i:03d}\n" for i in range(300))
            prod = kcat(["-b", bootstrap, "-P", "-t", "orders", "-X", "linger.ms=5",
                         "-X", "batch.num.messages=40", "-d", "protocol,msg"], stdin=msgs).stderr
            acks0 = kcat(["-b", bootstrap, "-P", "-t", "audit", "-p", "1", "-X", "acks=0",
                          "-d", "protocol"], stdin="".join(f"a{i}\n" for i in range(10))).stderr
            cons = kcat(["-b", bootstrap, "-C", "-t", "orders", "-o", "beginning", "-e",
                         "-X", "fetch.message.max.bytes=2000", "-d", "protocol,fetch"])
            # large messages: every ProduceRequest is bigger than the capture
            big_req = kcat(["-b", bootstrap, "-P", "-t", "big", "-X", "batch.num.messages=1",
                            "-X", "linger.ms=0", "-d", "protocol"],
                           stdin="".join(("B%d" % i) * 6000 + "\n" for i in range(5))).stderr
            big_cons = kcat(["-b", bootstrap, "-C", "-t", "big", "-o", "beginning", "-e",
                             "-d", "protocol,fetch"])
            hostile(int(port))
            # kafkajs: release the wrapper (exec node), wait for it
            kjs.p.stdin.write(b"go\n")
            kjs.p.stdin.flush()
            kjs.p.wait(60)
            time.sleep(1.0)
            metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        finally:
            agent.stop()
    finally:
        broker.terminate()
        broker.wait(10)
        kjs.stop()
    spans = agent.spans()
    blog = open(broker_log).read()

    # ---- 1. kcat producer -------------------------------------------------
    n_req = len(re.findall(r"Sent ProduceRequest", prod))
    n_err = len(re.findall(r"encountered error: Broker: Not leader", prod))
    prod_cl = [s for s in spans_of(spans, "PRODUCER", "send orders")
               if s["resource"]["service.name"] == "kcat"]
    prod_sv = spans_of(spans, "SERVER", "send orders")
    check(n_req >= 6, f"kcat sent {n_req} ProduceRequests for 300 messages (batches of 40 + 2 retries)")
    check_eq(len(prod_cl), n_req, "PRODUCER spans == ProduceRequests kcat logged")
    check_eq(len(prod_sv), n_req, "broker SERVER send spans == ProduceRequests kcat logged")
    errs = [s for s in prod_cl if s["status"]["code"] == "ERROR"]
    check_eq(len(errs), n_err, "error spans == 'Not leader' errors kcat logged")
    check(n_err == 2 and all(s["attributes"].get("error.type") == "NOT_LEADER_OR_FOLLOWER" for s in errs),
          "error.type NOT_LEADER_OR_FOLLOWER on the client side")
    check_eq(len([s for s in prod_sv if s["attributes"].get("error.type") == "NOT_LEADER_OR_FOLLOWER"]),
             n_err, "and on the broker side")
    check_eq(sum(count(s) for s in prod_cl if s["status"]["code"] != "ERROR"), 300,
             "messages of the successful producer spans")
    check(all(s["attributes"].get("messaging.destination.partition.id") == "0" and
              s["attributes"].get("messaging.system") == "kafka" and
              s["attributes"].get("messaging.operation.type") == "send" and
              s["attributes"].get("messaging.client.id") == "rdkafka" and
              s["attributes"].get("server.port") == int(port) for s in prod_cl),
          "producer span attributes (partition, system, operation, client id, server.port)")

    # ---- 2. acks=0 -----------------------------------------------------------
    a0 = spans_of(spans, "PRODUCER", "send audit")
    check_eq(len(a0), len(re.findall(r"Sent ProduceRequest", acks0)), "acks=0 PRODUCER spans")
    check(a0 and all(s["attributes"].get("messaging.destination.partition.id") == "1"
                     and count(s) == 10 for s in a0), "acks=0: partition 1, 10 messages")
    check_eq(len(spans_of(spans, "SERVER", "send audit")), len(a0), "acks=0 broker spans")

    # ---- 3. kcat consumer ------------------------------------------------------
    enq = [int(n) for n in re.findall(r"Enqueue (\d+) message\(s\)", cons.stderr) if int(n) > 0]
    got = cons.stdout.splitlines()
    cons_cl = [s for s in spans_of(spans, "CONSUMER", "receive orders")
               if s["resource"]["service.name"] == "kcat"]
    cons_cl.sort(key=lambda s: s["start_time_unix_nano"])
    check_eq(len(got), 300, "kcat consumed 300 messages")
    check(len(enq) >= 2, f"kcat's fetches that brought messages: {enq}")
    check_eq([count(s) for s in cons_cl], enq, "CONSUMER spans and their counts == kcat's 'Enqueue N message(s)'")
    srv = sorted(spans_of(spans, "SERVER", "receive orders"), key=lambda s: s["start_time_unix_nano"])
    check_eq([count(s) for s in srv], enq, "broker SERVER receive spans, same counts")
    check(all(s["attributes"].get("messaging.operation.type") == "receive" for s in cons_cl + srv),
          "messaging.operation.type receive")

    # ---- large messages, garbage ------------------------------------------------
    big = spans_of(spans, "PRODUCER", "send big")
    check_eq(len(big), len(re.findall(r"Sent ProduceRequest", big_req)),
             "ProduceRequests larger than the capture: one PRODUCER span each")
    check(big and all(count(s) == 1 for s in big), "their batch headers were read: 1 message each")
    benq = [int(n) for n in re.findall(r"Enqueue (\d+) message\(s\)", big_cons.stderr) if int(n) > 0]
    bcons = sorted([s for s in spans_of(spans, "CONSUMER", "receive big")],
                   key=lambda s: s["start_time_unix_nano"])
    check_eq(len(bcons), len(benq), "fetch responses larger than the capture: one CONSUMER span each")
    check(all(count(s) is None or count(s) == n for s, n in zip(bcons, benq)),
          f"their counts are right or left out, never guessed ({[count(s) for s in bcons]} vs {benq})")
    check_eq(agent.proc.returncode, 0, "the agent survived garbage, truncated frames and hostile sizes")

    # ---- 4. kafkajs ---------------------------------------------------------------
    kout = open(kjs_out).read() if os.path.exists(kjs_out) else ""
    check(kjs.p.returncode == 0 and "CONSUMED 100" in kout, f"kafkajs ran ({kjs.stderr_text()[-300:]})")
    jprod = [s for s in spans_of(spans, "PRODUCER", "send kjs")]
    jcons = [s for s in spans_of(spans, "CONSUMER", "receive kjs")]
    kjs_reqs = collections.Counter(re.findall(r"^REQ (\w+) ", kout, re.M))
    check_eq(len(jprod), kjs_reqs.get("Produce", 0), "kafkajs PRODUCER spans == Produce requests it logged")
    check(kjs_reqs.get("Produce", 0) == 5, f"kafkajs sent 5 Produce requests ({kjs_reqs})")
    check_eq(sum(count(s) for s in jprod), 100, "kafkajs produced messages")
    check_eq(sum(count(s) for s in jcons), 100, "kafkajs CONSUMER spans carry the 100 messages")
    check(all(s["attributes"].get("messaging.client.id") == "sonde-kafkajs" for s in jprod + jcons),
          "kafkajs client id")
    check_eq(len(spans_of(spans, "SERVER", "send kjs")), len(jprod), "broker spans for kafkajs' sends")
    check_eq(sum(count(s) for s in spans_of(spans, "SERVER", "receive kjs")), 100,
             "broker spans for kafkajs' fetches carry the 100 messages")
    # The mock answers acks=0 requests too (a real broker does not); that
    # answer matches no waiting request and is ignored by the plugin.
    check_eq(len(re.findall(r"Sending ProduceResponseV\d+", blog)),
             n_req + len(a0) + len(big) + kjs_reqs.get("Produce", 0),
             "the broker's own ProduceResponse count == kcat's and kafkajs' requests")

    # ---- 6. metric ------------------------------------------------------------------
    client = [s for s in spans if s["scope"] == "kafka" and s["kind"] in ("PRODUCER", "CONSUMER")]
    check_eq(int(prom_sum(metrics, "messaging_client_operation_duration_seconds_count")), len(client),
             "messaging_client_operation_duration_seconds_count == client spans")
    check(not any("m001" in str(s["attributes"]) or "kjs-1" in str(s["attributes"]) for s in spans),
          "no message payload in any attribute")

    # ---- 7. SDK 1.1 counters ------------------------------------------------------
    sent, consumed = "messaging_client_sent_messages_total", "messaging_client_consumed_messages_total"
    orders_all = int(prom_sum(metrics, sent, messaging_destination_name="orders"))
    orders_err = int(prom_sum(metrics, sent, messaging_destination_name="orders",
                              error_type="NOT_LEADER_OR_FOLLOWER"))
    check_eq(orders_all - orders_err, 300, "messaging.client.sent.messages{orders}, no error == kcat's 300")
    check_eq(orders_err, sum(count(s) for s in errs), "sent messages with error.type == the rejected requests'")
    check_eq(int(prom_sum(metrics, sent, messaging_destination_name="audit")), 10 * len(a0),
             "acks=0 sends are counted (10 messages each)")
    check_eq(int(prom_sum(metrics, sent, messaging_destination_name="kjs")), 100, "kafkajs: 100 sent")
    check_eq(int(prom_sum(metrics, consumed, messaging_destination_name="orders")), 300,
             "messaging.client.consumed.messages{orders} == kcat's 300")
    check_eq(int(prom_sum(metrics, consumed, messaging_destination_name="kjs")), 100,
             "messaging.client.consumed.messages{kjs} == kafkajs' 100")
    known = [s for s in client if count(s) is not None]
    check_eq(int(prom_sum(metrics, sent)) + int(prom_sum(metrics, consumed)), sum(count(s) for s in known),
             "sent + consumed == the messages of the client spans whose count is known")
    check_eq(int(prom_sum(metrics, sent, server_port=port)), int(prom_sum(metrics, sent)),
             "the counters carry server.port")
    finish()


if __name__ == "__main__":
    main()
