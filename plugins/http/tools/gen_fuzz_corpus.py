#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/http_fuzz.c (tests/fuzz/corpus/http/).

Each seed is one connection script in the harness's format (see the comment
at the top of http_fuzz.c): a mode byte, a seed byte, then records
[hdr][len lo][len hi][bytes]. Run from anywhere; it rewrites the seeds.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   '..', '..', '..', 'tests', 'fuzz', 'corpus', 'http')

SERVER, CLIENT, UNKNOWN = 1, 2, 0
IN, OUT_DIR = 0, 1
GAP, TRUNC = 2, 4


def rec(direction, data, flags=0, arg=0):
    if isinstance(data, str):
        data = data.encode('latin-1')
    hdr = direction | flags | (arg << 3)
    return bytes([hdr]) + struct.pack('<H', len(data)) + data


def script(mode, seed, *records):
    return bytes([mode, seed]) + b''.join(records)


def server(*records, mode=SERVER, seed=7):
    # server: requests arrive (ingress), responses leave (egress)
    return script(mode, seed, *records)


def client(*records, seed=9):
    return script(CLIENT, seed, *records)


OK5 = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'
CHUNKED = ('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
           '5;e=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: 1\r\n\r\n')

SEEDS = {
    'keepalive': server(
        rec(IN, 'GET /users/42?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n'
                'User-Agent: curl/8\r\n\r\n'),
        rec(OUT_DIR, OK5),
        rec(IN, 'POST /api/v1/items HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody'),
        rec(OUT_DIR, 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n')),
    'pipelined': server(
        rec(IN, 'GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, OK5 + 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'
                     'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', arg=3)),
    'chunked_split': server(
        rec(IN, 'GET /stream HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, CHUNKED, arg=3),
        rec(IN, 'PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
            arg=2),
        rec(OUT_DIR, 'HTTP/1.1 204 No Content\r\n\r\n')),
    'continue': server(
        rec(IN, 'POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.1 100 Continue\r\n\r\n'),
        rec(IN, 'abc'),
        rec(OUT_DIR, 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n'
                     'HTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\nx')),
    'truncated': server(
        rec(IN, 'GET /dl HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n' + 'z' * 200,
            flags=TRUNC, arg=10),
        rec(IN, 'GET /next HTTP/1.1\r\nHost: a\r\nUser-Agent: ' + 'u' * 60 + '\r\n\r\n',
            flags=TRUNC, arg=20),
        rec(OUT_DIR, OK5)),
    'gap': server(
        rec(IN, 'GET /a HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart'),
        rec(IN, 'GET /b HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, 'tail\r\n' + OK5, flags=GAP),
        rec(IN, 'GET /c HTTP/1.1\r\n\r\n', flags=GAP),
        rec(OUT_DIR, OK5)),
    'client': client(
        rec(OUT_DIR, 'GET /missing/123 HTTP/1.1\r\nHost: backend:81\r\n'
                     'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
                     '\r\n\r\n'),
        rec(IN, 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno')),
    'unknown_role': server(
        rec(OUT_DIR, 'end of a body\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
        rec(IN, 'GET /x HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, OK5), mode=UNKNOWN),
    'close_delimited': server(
        rec(IN, 'GET /old HTTP/1.0\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.0 200 OK\r\n\r\nbody until close')),
    'tunnel': server(
        rec(IN, 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.1 200 Connection Established\r\n\r\n'),
        rec(IN, '\x16\x03\x01\x00\x05hello'),
        rec(IN, 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n')),
    'upgrade': server(
        rec(IN, 'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
        rec(OUT_DIR, 'HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi')),
    'routes_tls': server(
        rec(IN, 'GET /static/app.js HTTP/1.1\r\n\r\nDELETE /users/7 HTTP/1.1\r\n\r\n'
                'PURGE /a/b HTTP/1.1\r\n\r\n'),
        rec(OUT_DIR, OK5 + OK5 + OK5), mode=SERVER | 0x04 | 0x10 | 0x08),
    'proxy_forms': client(
        rec(OUT_DIR, 'GET http://[::1]:8080/v1/x?q HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n'
                     'GET https://example.com HTTP/1.1\r\nHost: example.com:99999\r\n\r\n'
                     'OPTIONS * HTTP/1.1\r\nHost: :80\r\n\r\n'),
        rec(IN, OK5 + OK5 + 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')),
    'deep_pipeline': server(
        rec(IN, 'GET / HTTP/1.1\n\n' * 34),
        rec(OUT_DIR, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' * 3)),
    'raw': bytes([SERVER | 0x20, 3]) + (
        b'GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'4\r\nabcd\r\n0\r\n\r\n'),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds in {os.path.normpath(OUT)}')


if __name__ == '__main__':
    main()
