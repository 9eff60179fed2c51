#!/usr/bin/env python3
"""Live: OTLP/HTTP export from the real agent, decoded by a decoder that is
not ours (protobufjs + the official opentelemetry-proto files, see
tests/live/otlp_decode.js), and the exporter under collector faults.

A. http/protobuf (the default): every span of known traffic, ids, parent
   links, attributes, resource, and histogram counts equal to the traffic.
B. http/json + gzip + OTEL_EXPORTER_OTLP_HEADERS.
C. Faults: collector down at start then up; 503 twice then 200 (delivered
   once); collector gone mid-run with a small queue (drops counted, agent
   memory flat, the watched service unaffected).
"""
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, cannot_run, check, check_eq, fetch, finish, free_port,
                        nginx, prom_sum, require_live, wait_port, workdir)

HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "otlp_receiver.py")
DECODER = os.path.join(HERE, "otlp_decode.js")
FRONTEND = r'''
import http.client, http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=5)
        c.request("GET", "/index.html"); r = c.getresponse(); r.read(); c.close()
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''
HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def receiver(port, d, *extra):
    p = Proc([sys.executable, RECEIVER, "--port", str(port), "--dir", d, *extra])
    end = time.time() + 10
    while not os.path.exists(os.path.join(d, "ready")) and time.time() < end:
        time.sleep(0.05)
    return p


def decode(d):
    r = subprocess.run(["node", DECODER, "--dir", d], capture_output=True, text=True, timeout=180)
    if r.returncode == 3:
        cannot_run("independent OTLP decoder unavailable: " + r.stderr.strip()[-300:])
    if r.returncode != 0:
        check(False, "decoder accepted every body: " + r.stderr.strip()[-500:])
        return []
    return json.loads(r.stdout or "[]")


def spans_of(reqs):
    out = []
    for r in reqs:
        if r["meta"]["signal"] != "traces" or r["meta"]["status"] != 200:
            continue
        for rs in r["request"].get("resourceSpans", []):
            res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["_res"] = res
                    s["_scope"] = ss["scope"]["name"]
                    s["_attrs"] = {a["key"]: a["value"] for a in s.get("attributes", [])}
                    out.append(s)
    return out


def last_hist_counts(reqs, name):
    """Total count of histogram `name` in the last metrics request that has it."""
    for r in reversed(reqs):
        if r["meta"]["signal"] != "metrics" or r["meta"]["status"] != 200:
            continue
        total, seen, meta = 0, False, None
        for rm in r["request"].get("resourceMetrics", []):
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    if m["name"] == name:
                        seen, meta = True, m
                        total += sum(int(dp["count"]) for dp in m["histogram"]["dataPoints"])
        if seen:
            return total, meta
    return None, None


def get(port, path, n=1):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    codes = []
    for _ in range(n):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        codes.append(r.status)
    c.close()
    return codes


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    require_live("node", "npm", "nginx")
    r = subprocess.run(["node", DECODER, "--setup"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        cannot_run("independent OTLP decoder unavailable: " + r.stderr.strip()[-300:])

    root = workdir("otlp-www")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("hello\n")
    p_app, p_front = free_port(), free_port()
    app = Proc([sys.executable, "-m", "http.server", "-p", "HTTP/1.1", "-b", "127.0.0.1", "-d", root, str(p_app)])
    fpy = os.path.join(workdir("otlp-front"), "front.py")
    with open(fpy, "w") as f:
        f.write(FRONTEND)
    front = Proc([sys.executable, fpy, str(p_front), str(p_app)])
    wait_port(p_app)
    wait_port(p_front)
    ports = f"{p_app},{p_front}"
    base_env = {"OTEL_METRIC_EXPORT_INTERVAL": "1000",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,team=sre"}
    try:
        # ---- A. protobuf ----------------------------------------------------
        d = workdir("otlp-a")
        rport = free_port()
        rec = receiver(rport, d)
        agent = Agent("--open-port", ports, "--otlp-endpoint", f"http://127.0.0.1:{rport}", env=base_env)
        codes = get(p_app, "/index.html", 10) + get(p_app, "/users/42", 3) + get(p_app, "/users/77", 2)
        codes += get(p_front, "/call", 3)
        time.sleep(2.5)  # at least one metric export interval
        agent.stop()
        rec.stop()
        check_eq(codes.count(200), 13, "traffic A served")
        reqs = decode(d)
        spans = spans_of(reqs)
        server = [s for s in spans if s["kind"] == 2]
        client = [s for s in spans if s["kind"] == 3]
        check_eq(len(server), 10 + 5 + 3 + 3, "server spans decoded from OTLP/protobuf")
        check_eq(len(client), 3, "client spans decoded")
        check(all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans), "id lengths")
        check_eq(len({s["spanId"] for s in spans}), len(spans), "span ids unique")
        fronts = {s["spanId"]: s for s in server if s["_attrs"]["server.port"]["intValue"] == str(p_front)}
        for c in client:
            p = fronts.get(c.get("parentSpanId"))
            check(p is not None and p["traceId"] == c["traceId"], "client span's parent is the front end's server span")
        check(all("parentSpanId" not in s or not s["parentSpanId"] for s in fronts.values()), "front end spans are roots")
        users = [s for s in server if s["_attrs"].get("http.route", {}).get("stringValue") == "/users/*"]
        check_eq(len(users), 5, "http.route attribute")
        check(all(s["_attrs"]["http.response.status_code"]["intValue"] == "404" for s in users), "status code attribute")
        res = server[0]["_res"]
        for k in ("service.name", "service.instance.id", "telemetry.sdk.name", "telemetry.sdk.version",
                  "telemetry.sdk.language", "process.pid", "process.executable.name", "host.name"):
            check(k in res, f"resource has {k}")
        check_eq(res.get("deployment.environment.name", {}).get("stringValue"), "test", "OTEL_RESOURCE_ATTRIBUTES")
        check(all(s["_scope"] == "http" for s in spans), "scope is the plugin")
        trace_meta = [r["meta"] for r in reqs if r["meta"]["signal"] == "traces"]
        check(all(m["path"] == "/v1/traces" and m["content_type"] == "application/x-protobuf" for m in trace_meta),
              "POST /v1/traces, application/x-protobuf (default protocol)")
        n_srv, m = last_hist_counts(reqs, "http.server.request.duration")
        check_eq(n_srv, len(server), "http.server.request.duration count == server spans")
        if m:
            check_eq(m.get("unit"), "s", "histogram unit")
            check_eq(m["histogram"].get("aggregationTemporality"), 2, "cumulative temporality by default")
            check_eq([float(b) for b in m["histogram"]["dataPoints"][0]["explicitBounds"]], HTTP_BUCKETS,
                     "semantic-convention buckets")
        n_cl, _ = last_hist_counts(reqs, "http.client.request.duration")
        check_eq(n_cl, len(client), "http.client.request.duration count == client spans")

        # ---- B. JSON + gzip + headers ------------------------------------------
        d = workdir("otlp-b")
        rport = free_port()
        rec = receiver(rport, d)
        env = dict(base_env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{rport}",
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/json", OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
                   OTEL_EXPORTER_OTLP_HEADERS="x-tenant=team%20a,authorization=Bearer%20t0k")
        agent = Agent("--open-port", ports, env=env)
        get(p_app, "/index.html", 5)
        time.sleep(1.5)
        agent.stop()
        rec.stop()
        reqs = decode(d)
        check_eq(len(spans_of(reqs)), 5, "spans decoded from OTLP/JSON + gzip")
        metas = [r["meta"] for r in reqs if r["meta"]["signal"] == "traces"]
        check(metas and all(m["content_type"] == "application/json" and m["content_encoding"] == "gzip"
                            and m["headers"].get("x-tenant") == "team a" for m in metas),
              "JSON content type, gzip, headers from OTEL_EXPORTER_OTLP_HEADERS")

        # ---- C1. collector down at start, then up ------------------------------
        d = workdir("otlp-c1")
        rport = free_port()
        agent = Agent("--open-port", ports, "--otlp-endpoint", f"http://127.0.0.1:{rport}", env=base_env)
        get(p_app, "/index.html", 5)
        time.sleep(1.5)
        rec = receiver(rport, d)
        end = time.time() + 40
        while time.time() < end and len(spans_of(decode(d))) < 5:
            time.sleep(1)
        agent.stop()
        rec.stop()
        check_eq(len(spans_of(decode(d))), 5, "collector down at start: spans delivered once it is up")

        # ---- C2. 503 twice, then 200 ---------------------------------------------
        d = workdir("otlp-c2")
        rport = free_port()
        rec = receiver(rport, d, "--fail", "2", "--fail-status", "503")
        agent = Agent("--open-port", ports, "--otlp-endpoint", f"http://127.0.0.1:{rport}",
                      env=dict(base_env, OTEL_METRIC_EXPORT_INTERVAL="600000"))
        get(p_app, "/index.html", 4)
        end = time.time() + 30
        while time.time() < end and len(spans_of(decode(d))) < 4:
            time.sleep(1)
        agent.stop()
        rec.stop()
        reqs = decode(d)
        statuses = [r["meta"]["status"] for r in reqs if r["meta"]["signal"] == "traces"]
        check(statuses[:2] == [503, 503] and 200 in statuses, f"503, 503, then 200 ({statuses})")
        check_eq(len(spans_of(reqs)), 4, "after 503s every span delivered exactly once")

        # ---- C3. collector gone mid-run, small queue ---------------------------------
        # nginx as the watched service: python http.server needs ~44 ms per
        # keep-alive request (Nagle + delayed ACK), nginx does not.
        os.chmod(root, 0o755)
        p_ng = free_port()
        ng = nginx(p_ng, root)
        wait_port(p_ng)
        d = workdir("otlp-c3")
        rport, pprom = free_port(), free_port()
        cfg = os.path.join(d, "q.yaml")
        with open(cfg, "w") as f:
            f.write(f"export:\n  otlp:\n    endpoint: http://127.0.0.1:{rport}\n    queue_size: 256\n")
        rec = receiver(rport, d)
        agent = Agent("--open-port", str(p_ng), "--config", cfg, "--prometheus-port", str(pprom), env=base_env)
        get(p_ng, "/index.html", 3)
        time.sleep(1.5)
        rec.stop()
        rss0 = rss_kb(agent.proc.pid)
        codes = []
        for _ in range(6):
            codes += get(p_ng, "/index.html", 500)
        time.sleep(1.5)
        rss1 = rss_kb(agent.proc.pid)
        metrics = fetch(f"http://127.0.0.1:{pprom}/metrics")
        agent.stop()
        check_eq(codes.count(200), 3000, "watched service unaffected while the collector is gone")
        dropped = prom_sum(metrics, "sonde_otlp_spans_dropped_total")
        failed = prom_sum(metrics, "sonde_otlp_spans_failed_total")
        queued = prom_sum(metrics, "sonde_otlp_queue_spans")
        check(dropped >= 3000 - 256 - 512 - 10, f"drops counted ({dropped:.0f} dropped, {failed:.0f} failed, {queued:.0f} queued)")
        check(queued <= 256, "queue bounded")
        check(rss1 - rss0 < 16 * 1024, f"agent memory flat through the outage (RSS {rss0} -> {rss1} KiB)")
        check_eq(len(spans_of(decode(d))), 3, "spans before the outage delivered")
        ng.stop()
    finally:
        app.stop()
        front.stop()
    finish()


if __name__ == "__main__":
    main()
