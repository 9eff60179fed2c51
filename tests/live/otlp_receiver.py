#!/usr/bin/env python3
"""otlp_receiver.py - a small OTLP/HTTP receiver for tests.

It stores every request it gets, failed ones included, so a test can count
deliveries and attempts, and it can be told to misbehave like a collector
in trouble. It never decodes anything: otlp_decode.js does that, with the
official schema.

Usage:
  otlp_receiver.py --port PORT --dir DIR [--host 127.0.0.1]
                   [--fail N] [--fail-status 503] [--retry-after SECS]
                   [--status CODE] [--delay SECS]

  --fail N          answer the first N requests with --fail-status (default
                    503), adding "Retry-After: SECS" when --retry-after is set
  --status CODE     answer every other request with CODE (default 200)
  --delay SECS      wait SECS before answering each request (a slow collector)
  "Down" is simply not running it, or killing it (SIGTERM exits cleanly).

Per request (seq counts from 1, in arrival order):
  DIR/NNNNNN-SIGNAL.body       the body exactly as received (maybe gzip)
  DIR/NNNNNN-SIGNAL.meta.json  {"seq", "time" (unix s), "method", "path",
                                "signal" (traces|metrics|logs|unknown),
                                "headers" {lowercased name: value},
                                "content_type", "content_encoding",
                                "body_len", "status" (what we answered)}
The .meta.json is written last (atomically), so its presence means the
request is complete. DIR/ready holds the port once the socket listens.

From Python:
  p = subprocess.Popen([sys.executable, RECEIVER, "--port", "14318",
                        "--dir", d, "--fail", "2"])
  wait for os.path.exists(d + "/ready"); ...; p.terminate(); p.wait()
  then: node otlp_decode.js --dir d  ->  [{"meta": ..., "request": ...}]
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.seq = 0

    def next(self):
        with self.lock:
            self.seq += 1
            return self.seq


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def make_handler(state):
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: tests read the files
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seq = state.next()
            if seq <= args.fail:
                status = args.fail_status
            else:
                status = args.status
            signal_name = SIGNALS.get(self.path.split("?")[0], "unknown")
            stem = os.path.join(args.dir, "%06d-%s" % (seq, signal_name))
            write_atomic(stem + ".body", body)
            meta = {
                "seq": seq,
                "time": time.time(),
                "method": "POST",
                "path": self.path,
                "signal": signal_name,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "content_type": self.headers.get("Content-Type", ""),
                "content_encoding": self.headers.get("Content-Encoding", ""),
                "body_len": len(body),
                "status": status,
            }
            write_atomic(stem + ".meta.json", json.dumps(meta).encode())
            if args.delay:
                time.sleep(args.delay)
            json_body = "json" in meta["content_type"]
            reply = b"{}" if json_body else b""  # an empty Export*ServiceResponse
            try:
                self.send_response(status)
                if seq <= args.fail and args.retry_after is not None:
                    self.send_header("Retry-After", str(args.retry_after))
                self.send_header("Content-Type",
                                 "application/json" if json_body else "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main():
    ap = argparse.ArgumentParser(description="OTLP/HTTP receiver for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=503)
    ap.add_argument("--retry-after", type=int, default=None)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((args.host, args.port), make_handler(State(args)))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    write_atomic(os.path.join(args.dir, "ready"), str(srv.server_address[1]).encode())
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
