#!/usr/bin/env python3
"""strace2corpus.py - turn a Kafka peer's system calls into kafka_fuzz inputs.

How the seeds in tests/fuzz/corpus/kafka/rec-* were made: a real client
(kcat, kafkajs) or the mock broker ran under

    strace -f -qq -e trace=connect,accept,accept4,close,sendmsg,recvmsg,
           sendto,recvfrom,read,write,writev,readv -e read=all -e write=all

and this script cut the hex dumps of one TCP connection into chunks, one
per system call, exactly as the agent would see them.

Output format (tests/fuzz/kafka_fuzz.c): byte 0 is the configuration (bits
0-1 role: 1 server, 2 client), then one record per chunk: a flags byte
(bit 0: egress), a 2-byte big-endian length, the bytes.

Usage: strace2corpus.py TRACE PORT ROLE OUT_PREFIX
  PORT: the broker's port; ROLE: client (the traced process connected to
  PORT) or server (it accepted connections on PORT). One file per
  connection: OUT_PREFIX-1, OUT_PREFIX-2, ...
"""
import re
import sys

CALL = re.compile(r'^(\d+)\s+(\w+)\((\d+)(?:,(.*))?\)\s+=\s+(-?\d+)')
DUMP = re.compile(r'^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})')
IN = {"recvmsg", "recvfrom", "read", "readv"}
OUT = {"sendmsg", "sendto", "write", "writev"}


def parse(path):
    """Yield (pid, call, fd, args, ret, data) with the dumped bytes."""
    cur = None
    for line in open(path, errors="replace"):
        m = CALL.match(line)
        if m:
            if cur:
                yield cur
            pid, call, fd, args, ret = m.groups()
            cur = [int(pid), call, int(fd), args or "", int(ret), bytearray()]
            continue
        d = DUMP.match(line)
        if d and cur:
            cur[5] += bytes.fromhex(d.group(1).replace(" ", ""))
    if cur:
        yield cur


def main():
    trace, port, role, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    want = f"htons({port})"
    conns = {}   # fd -> list of (egress, bytes)
    done = []
    for pid, call, fd, args, ret, data in parse(trace):
        if role == "client" and call == "connect" and want in args:
            conns[fd] = []
        elif role == "server" and call in ("accept", "accept4") and ret >= 0:
            conns[ret] = []
        elif call == "close" and fd in conns:
            done.append(conns.pop(fd))
        elif fd in conns and ret > 0 and (call in IN or call in OUT):
            conns[fd].append((call in OUT, bytes(data[:ret])))
    done.extend(conns.values())
    cfg = 2 if role == "client" else 1
    n = 0
    for chunks in done:
        if not chunks:
            continue
        n += 1
        with open(f"{out}-{n}", "wb") as f:
            f.write(bytes([cfg]))
            for egress, b in chunks:
                while b:
                    part, b = b[:65535], b[65535:]
                    f.write(bytes([1 if egress else 0, len(part) >> 8, len(part) & 255]) + part)
        print(f"{out}-{n}: {len(chunks)} chunks")


if __name__ == "__main__":
    main()
