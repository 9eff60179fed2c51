#!/usr/bin/env python3
"""Replay tier: a real capture (tests/data/http_python.sonde, made by
tests/replay/record_http.sh) goes through the real pipeline with
`sonde --replay` and must give the spans of the traffic that was recorded.
No root and no kernel needed: this is also how plugin authors test."""
import collections
import json
import os
import subprocess
import sys

SRC = os.environ.get("SONDE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SONDE_BUILD") or os.path.join(SRC, "build")
failed = passed = 0


def check(cond, what):
    global failed, passed
    print(("ok   - " if cond else "FAIL - ") + what)
    passed += bool(cond)
    failed += not cond


def replay(name, *extra):
    r = subprocess.run([os.path.join(BUILD, "sonde"), "--replay", os.path.join(SRC, "tests", "data", name),
                        "--print", "json", *extra], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"replay of {name} exits 0 (stderr: {r.stderr.strip()[-300:]})")
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


spans = replay("http_python.sonde")
check(len(spans) == 20, f"20 requests recorded -> {len(spans)} spans")
check(all(s["kind"] == "SERVER" for s in spans), "all server spans")
routes = collections.Counter((s["attributes"]["http.request.method"], s["attributes"]["http.route"],
                              s["attributes"]["http.response.status_code"]) for s in spans)
want = {("GET", "/", 200): 7, ("GET", "/index.html", 200): 3, ("GET", "/users/*", 404): 3,
        ("GET", "/items/*", 404): 4, ("POST", "/submit", 501): 1, ("HEAD", "/", 200): 1,
        ("GET", "/big.bin", 200): 1}
check(routes == want, f"method/route/status mix: {dict(routes)}")
errors = [s for s in spans if s["status"]["code"] == "ERROR"]
check(len(errors) == 1 and errors[0]["attributes"]["http.response.status_code"] == 501, "only the 501 is an error")
tp = [s for s in spans if s["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"]
check(len(tp) == 1 and tp[0]["parent_span_id"] == "00f067aa0ba902b7", "recorded traceparent honoured")
check(len({s["span_id"] for s in spans}) == 20, "span ids are unique")
check(all(s["end_time_unix_nano"] >= s["start_time_unix_nano"] for s in spans), "end >= start")
check(all(s["resource"]["service.name"] == "python3.11" or s["resource"]["service.name"].startswith("python")
          for s in spans), "service.name from the recording")

# The same recording with the http protocol disabled for the service: nothing.
cfg = os.path.join(BUILD, "replay_disabled.yaml")
with open(cfg, "w") as f:
    f.write("services:\n  - name: web\n    open_ports: [1]\n    protocols: [redis]\n")
spans = replay("http_python.sonde", "--config", cfg)
check(len(spans) == 0, f"http disabled for the service -> {len(spans)} spans")

# Configured route patterns win over the heuristic.
cfg = os.path.join(BUILD, "replay_routes.yaml")
with open(cfg, "w") as f:
    f.write("services:\n  - name: web\n    open_ports: [1]\n    routes: [\"/users/{id}\", \"/items/*\"]\n")
spans = replay("http_python.sonde", "--config", cfg)
routes = collections.Counter(s["attributes"]["http.route"] for s in spans)
check(routes["/users/{id}"] == 3 and routes["/items/*"] == 4, f"configured routes win: {dict(routes)}")
check(all(s["resource"]["service.name"] == "web" for s in spans), "service name from the config in a replay")

# Redis: a real capture of redis-server (tests/replay/record_redis.sh).
spans = replay("redis.sonde")
ops = collections.Counter(s["name"] for s in spans)
check(len(spans) == 138, f"138 commands recorded -> {len(spans)} spans")
check(ops["SET"] == 66 and ops["GET"] == 65 and ops["CONFIG"] == 2, f"command mix {dict(ops)}")
err = [s for s in spans if s["status"]["code"] == "ERROR"]
check(len(err) == 1 and err[0]["attributes"]["error.type"] == "WRONGTYPE", "WRONGTYPE error reply")
check(any(s["attributes"].get("db.namespace") == "2" for s in spans), "db.namespace after SELECT 2")
check(all(s["kind"] == "SERVER" and s["attributes"]["db.system.name"] == "redis" for s in spans),
      "server spans with db.system.name=redis")
check(not any("alice" in json.dumps(s) for s in spans), "no command argument exported")

# A bad recording is refused with a message, not a crash.
bad = os.path.join(BUILD, "bad.sonde")
with open(bad, "wb") as f:
    f.write(b"NOTSONDE" + b"\0" * 64)
r = subprocess.run([os.path.join(BUILD, "sonde"), "--replay", bad], capture_output=True, text=True)
check(r.returncode != 0 and "not a sonde recording" in r.stderr, "bad recording refused clearly")
with open(os.path.join(SRC, "tests", "data", "http_python.sonde"), "rb") as f:
    data = f.read()
with open(bad, "wb") as f:
    f.write(data[: len(data) // 2 + 7])
r = subprocess.run([os.path.join(BUILD, "sonde"), "--replay", bad, "--print", "json"], capture_output=True, text=True)
check(r.returncode != 0 and "truncated" in r.stderr, "truncated recording refused clearly")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
