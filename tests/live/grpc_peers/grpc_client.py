"""grpc_client.py - the gRPC client of the live tests (python3-grpcio, generic
stubs: raw bytes, no protoc).

It opens ONE channel and makes a warm-up call on it first. If --wait is
given it then reads a line from stdin before going on: the test starts the
agent in between, so the channel (and its HPACK tables) predates the agent.
Then it runs the scenario and prints one JSON object on stdout: the calls
it made, per "Method code", as the client saw them.

Scenario (numbers from the command line):
  unary OK x U, unary failing with each code in --codes, server-streaming x S,
  client-streaming x S, bidi x S, and C concurrent unary calls in flight on
  the channel at once (each sleeping 200 ms on the server).

usage: /usr/bin/python3 grpc_client.py PORT [--wait] [--out FILE] [-u U] [-s S] [-c C]
                                          [--codes 5,14] [--methods Nope]
"""
import argparse
import collections
import json
import os
import sys

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--wait", action="store_true")
    ap.add_argument("--out", help="write the JSON result here too")
    ap.add_argument("-u", type=int, default=10)
    ap.add_argument("-s", type=int, default=3)
    ap.add_argument("-c", type=int, default=20)
    ap.add_argument("--codes", default="3,5,13,14")
    ap.add_argument("--methods", default="",
                    help="also call these unknown methods once each (UNIMPLEMENTED)")
    a = ap.parse_args()

    ch = grpc.insecure_channel(f"127.0.0.1:{a.port}")
    unary = ch.unary_unary("/demo.Echo/Unary")
    sstream = ch.unary_stream("/demo.Echo/ServerStream")
    cstream = ch.stream_unary("/demo.Echo/ClientStream")
    bidi = ch.stream_stream("/demo.Echo/Bidi")
    made = collections.Counter()
    warm = collections.Counter()

    def call_unary(req, counter):
        try:
            unary(req, timeout=20)
            counter["Unary 0"] += 1
        except grpc.RpcError as e:
            counter[f"Unary {e.code().value[0]}"] += 1

    # warm-up: the channel, its connection and its HPACK tables exist now
    call_unary(b"warm", warm)
    list(sstream(b"2", timeout=20))
    warm["ServerStream 0"] += 1
    if a.wait:
        print("ready", file=sys.stderr, flush=True)
        sys.stdin.readline()

    for i in range(a.u):
        call_unary(b"hello %d" % i, made)
    for code in [int(c) for c in a.codes.split(",") if c]:
        call_unary(b"fail:%d" % code, made)
    for i in range(a.s):
        n = len(list(sstream(b"5", timeout=20)))
        assert n == 5, n
        made["ServerStream 0"] += 1
        cstream(iter([b"a", b"b", b"c"]), timeout=20)
        made["ClientStream 0"] += 1
        out = list(bidi(iter([b"x", b"y"]), timeout=20))
        assert len(out) == 2, out
        made["Bidi 0"] += 1
    for m in [m for m in a.methods.split(",") if m]:
        try:
            ch.unary_unary(f"/demo.Echo/{m}")(b"x", timeout=20)
            made[f"{m} 0"] += 1
        except grpc.RpcError as e:
            made[f"{m} {e.code().value[0]}"] += 1
    futs = [unary.future(b"sleep:200", timeout=30) for _ in range(a.c)]
    for f in futs:
        try:
            f.result()
            made["Unary 0"] += 1
        except grpc.RpcError as e:
            made[f"Unary {e.code().value[0]}"] += 1
    ch.close()
    res = json.dumps({"made": dict(made), "warmup": dict(warm)})
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(res)
        os.rename(a.out + ".tmp", a.out)
    print(res, flush=True)


if __name__ == "__main__":
    main()
