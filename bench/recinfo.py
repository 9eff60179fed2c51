#!/usr/bin/env python3
"""recinfo.py - count the records in a sonde recording, and write its
"empty twin" (the same header and META_PROC records, no kernel records).
A partial record at the end (the agent stopped mid-write) is cut off the
recording in place, so that the replay reads whole records only.

The one idea: replaying the empty twin costs exactly the replay's fixed
start-up (plugin loading, process set-up), so the pipeline benchmark can
subtract it and divide the records by the CPU time spent on them alone.

File format (core/record.c): "SONDEREC" | u32 version | u32 header size |
i64 mono_to_real | ... then repeated u32 len | len bytes, each record
starting with struct sonde_ev_hdr (u32 type first). Types >= 100 are meta.

usage: recinfo.py RECORDING EMPTY_OUT
prints: records=N data=N data_bytes=N meta=N partial_tail_bytes_dropped=N
"""
import struct
import sys

SONDE_EV_DATA = 1
META_MIN = 100


def main():
    if len(sys.argv) != 3:
        print("usage: recinfo.py RECORDING EMPTY_OUT", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    if len(blob) < 24 or blob[:8] != b"SONDEREC":
        print(f"recinfo: {sys.argv[1]}: not a sonde recording", file=sys.stderr)
        return 1
    hsize = struct.unpack_from("<I", blob, 12)[0]
    off = hsize
    records = data = data_bytes = meta = 0
    empty = bytearray(blob[:hsize])
    while off + 4 <= len(blob):
        (n,) = struct.unpack_from("<I", blob, off)
        rec = blob[off + 4:off + 4 + n]
        if n < 4:
            print(f"recinfo: bad record length {n} at byte {off}", file=sys.stderr)
            return 1
        if len(rec) < n:
            break  # the agent was stopped mid-write: drop the partial tail
        (typ,) = struct.unpack_from("<I", rec, 0)
        if typ >= META_MIN:
            meta += 1
            empty += blob[off:off + 4 + n]
        else:
            records += 1
            if typ == SONDE_EV_DATA:
                data += 1
                data_bytes += n
        off += 4 + n
    cut = len(blob) - off
    if cut:
        with open(sys.argv[1], "r+b") as f:
            f.truncate(off)
    with open(sys.argv[2], "wb") as f:
        f.write(empty)
    print(f"records={records} data={data} data_bytes={data_bytes} meta={meta} "
          f"partial_tail_bytes_dropped={cut}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
