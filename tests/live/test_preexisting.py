#!/usr/bin/env python3
"""Live: connections that exist before the agent starts.

Each server below holds a keep-alive connection whose serving thread is
already blocked inside the read syscall when the agent attaches. The
capture layer hooks syscall exits only and takes every call's arguments
from the user registers saved at entry, so that blocked call must be seen
like any other, on a connection the kernel side first meets mid-life. One
small keep-alive server per read syscall: recv (recvfrom(2)), read(2),
readv(2) and recvmsg(2), answering with send(2), write(2), writev(2) and
sendmsg(2). For each, N requests after the start must give exactly N server
spans with the right paths and statuses (the first one is the request the
blocked read returns), and the agent must report the connections it first
saw mid-life.
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (Agent, Proc, check, check_eq, finish, require_live, wait_port,
                        workdir)

# A one-connection-at-a-time HTTP/1.1 keep-alive server whose reads and writes
# use the syscall named on its command line. Requests have no body.
RAW_SERVER = r'''
import os, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(8)

def rd(s):
    if mode == "recv":
        return s.recv(4096)
    if mode == "read":
        return os.read(s.fileno(), 4096)
    if mode == "readv":
        b = bytearray(4096)
        n = os.readv(s.fileno(), [b])
        return bytes(b[:n])
    data, _, _, _ = s.recvmsg(4096)
    return data

def wr(s, data):
    if mode == "recv":
        return s.send(data)
    if mode == "read":
        return os.write(s.fileno(), data)
    if mode == "readv":
        return os.writev(s.fileno(), [data[:20], data[20:]])
    return s.sendmsg([data])

while True:
    c, _ = ls.accept()
    buf = b""
    while True:
        d = rd(c)
        if not d:
            break
        buf += d
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1]
            code = b"404 Not Found" if path.startswith(b"/missing") else b"200 OK"
            body = b"hello from " + mode.encode() + b"\n"
            resp = (b"HTTP/1.1 " + code + b"\r\nContent-Length: " + str(len(body)).encode()
                    + b"\r\nContent-Type: text/plain\r\n\r\n" + body)
            while resp:
                resp = resp[wr(c, resp):]
    c.close()
'''

N = 6


def request(sock, path):
    """One request on a keep-alive socket; returns the status code."""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: pre\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        m = re.search(rb"Content-Length: (\d+)\r\n", data)
        head_end = data.find(b"\r\n\r\n")
        if m and head_end >= 0 and len(data) >= head_end + 4 + int(m.group(1)):
            break
    return int(data.split(b" ")[1])


def path_for(mode, i):
    """Every third request misses."""
    return ("/missing/%d" if i % 3 == 2 else "/items/%d") % i


def main():
    require_live("python3")
    raw_py = os.path.join(workdir("pre-raw"), "raw_server.py")
    with open(raw_py, "w") as f:
        f.write(RAW_SERVER)

    ports = {"recv": 17301, "read": 17302, "readv": 17303, "recvmsg": 17304}
    servers = {}
    for mode in ports:
        servers[mode] = Proc([sys.executable, raw_py, mode, str(ports[mode])])
    agent = None
    conns = {}
    codes = {}
    try:
        for mode, port in ports.items():
            wait_port(port)
            # wait_port's probe connection must be done with before ours,
            # the raw servers serve one connection at a time.
            time.sleep(0.1)
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            # One request before the agent: the server thread then blocks
            # in its read syscall waiting for the next one.
            check_eq(request(s, "/before"), 200,
                     f"{mode}: request before the agent answered")
            conns[mode] = s
        time.sleep(0.3)
        agent = Agent("--open-port", ",".join(str(p) for p in ports.values()))
        time.sleep(0.5)
        for mode, s in conns.items():
            codes[mode] = []
            for i in range(N):
                codes[mode].append(request(s, path_for(mode, i)))
        for mode, port in ports.items():
            agent.wait_spans(N, timeout=5,
                             pred=lambda sp, port=port: sp["attributes"].get("server.port") == port)
        time.sleep(0.5)
    finally:
        for s in conns.values():
            s.close()
        rc = agent.stop() if agent else None
        for p in servers.values():
            p.stop()
    check_eq(rc, 0, "agent exit code")
    spans = agent.spans()
    for mode, port in ports.items():
        mine = [s for s in spans if s["attributes"].get("server.port") == port]
        check_eq(len(mine), N, f"{mode}: spans for {N} requests after the start")
        got = [(s["attributes"].get("url.path"), s["attributes"].get("http.response.status_code"))
               for s in mine]
        want = [(path_for(mode, i), codes[mode][i]) for i in range(N)]
        check_eq(got, want, f"{mode}: paths and statuses in order")
        check("/before" not in [g[0] for g in got], f"{mode}: nothing from before the start")
    err = agent.stderr_text()
    m = re.search(r"(\d+) connections first seen mid-life", err)
    midlife = int(m.group(1)) if m else 0
    check(midlife >= len(ports),
          f"pre-existing connections reported: {midlife} >= {len(ports)}")
    finish()


if __name__ == "__main__":
    main()
