#!/usr/bin/env bash
# What this machine charges for the mechanisms sonde's capture uses: a
# syscall, a syscall tracepoint program (alone, and as bpf_stats counts
# it), a ring-buffer record, a uprobe hit. Explains the floors in
# docs/performance.md. Root. Usage: bench/vm_costs.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/build}/bench
mkdir -p "$OUT"
MA=$(gcc -print-multiarch 2>/dev/null || true)
clang -O2 -g -target bpf ${MA:+-I/usr/include/$MA} -c "$SRC/bench/vm_costs.bpf.c" -o "$OUT/vm_costs.bpf.o"
cc -O2 -Wall -o "$OUT/vm_costs" "$SRC/bench/vm_costs.c" -lbpf
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
old=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$old" > /proc/sys/kernel/bpf_stats_enabled' EXIT
taskset -c "${VMCOST_CPU:-1}" "$OUT/vm_costs" "$OUT/vm_costs.bpf.o"
