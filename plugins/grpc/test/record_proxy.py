"""record_proxy.py - a logging TCP proxy that records a real HTTP/2 / gRPC
conversation as byte vectors for tests/unit/grpc_recorded_test.c.

It accepts one connection, connects to the real server, copies bytes both
ways and logs every read as one "write" (direction and bytes, in order).
At the end it prints a C array: { from_client, length, "hex" } per read.

usage: python3 record_proxy.py LISTEN_PORT SERVER_PORT > vectors.h
"""
import select
import socket
import sys


def main():
    lport, sport = int(sys.argv[1]), int(sys.argv[2])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(1)
    c, _ = ls.accept()
    s = socket.create_connection(("127.0.0.1", sport))
    log = []
    open_ = {c: s, s: c}
    while open_:
        r, _, _ = select.select(list(open_), [], [], 5)
        if not r:
            break
        for x in r:
            d = x.recv(65536)
            if not d:
                open_.pop(x, None)
                continue
            log.append((x is c, d))
            if open_.get(x):
                open_[x].sendall(d)
    print("/* recorded by plugins/grpc/test/record_proxy.py */")
    for from_client, d in log:
        print("\t{ %d, %d, \"%s\" }," % (from_client, len(d), d.hex()))


if __name__ == "__main__":
    main()
