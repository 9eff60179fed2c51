"""grpc_server.py - a gRPC server for the live tests, built on python3-grpcio
(Debian) with generic handlers, so no .proto and no protoc are needed:
messages are raw bytes.

Service demo.Echo:
  Unary         unary-unary;   a request b"fail:<code>" aborts with that code,
                               b"sleep:<ms>" answers after that many ms
  ServerStream  unary-stream;  request b"<n>" -> n messages
  ClientStream  stream-unary;  answers the number of messages received
  Bidi          stream-stream; echoes every message

The server counts the calls it finished, per method and status code, and
writes them as JSON to argv[2] when it gets SIGTERM: the live test compares
the agent's server spans with these numbers.

usage: /usr/bin/python3 grpc_server.py PORT STATS_FILE
"""
import collections
import json
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

lock = threading.Lock()
counts = collections.Counter()  # "Method code" -> calls


def done(method, code):
    with lock:
        counts[f"{method} {code}"] += 1


def unary(req, ctx):
    if req.startswith(b"fail:"):
        code = int(req[5:])
        done("Unary", code)
        ctx.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == code)),
                  "failed on purpose: user data must not be exported")
    if req.startswith(b"sleep:"):
        time.sleep(int(req[6:]) / 1000)
    done("Unary", 0)
    return b"echo:" + req


def server_stream(req, ctx):
    n = int(req or b"3")
    for i in range(n):
        yield b"item %d" % i
    done("ServerStream", 0)


def client_stream(it, ctx):
    n = sum(1 for _ in it)
    done("ClientStream", 0)
    return b"%d" % n


def bidi(it, ctx):
    for m in it:
        yield m
    done("Bidi", 0)


def main():
    port, stats = int(sys.argv[1]), sys.argv[2]
    handler = grpc.method_handlers_generic_handler("demo.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    with lock, open(stats + ".tmp", "w") as f:
        json.dump(dict(counts), f)
    import os
    os.rename(stats + ".tmp", stats)


if __name__ == "__main__":
    main()
