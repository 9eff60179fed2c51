# bench/bpf_stats.sh - BPF run time per program, for bench scripts (sourced).
#
# With kernel.bpf_stats_enabled=1 the kernel adds every program's run time
# and run count to its fdinfo. The agent holds an fd of each program it
# loaded (plugins' included): a snapshot is "prog_id run_time_ns run_cnt"
# per program. Differences between two snapshots, divided by the requests
# in between, give BPF ns per request - every hit counted, from watched
# processes or not.
BPF_STATS0=
bpf_stats_on() {
  BPF_STATS0=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null) || return 1
  sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null
}
bpf_stats_restore() { [ -z "$BPF_STATS0" ] || sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS0" 2>/dev/null; }

# Snapshot of the programs PID holds into FILE, their names into FILE.names
# (programs are gone once the agent stops: names are taken while they live).
bpf_snap() { # PID FILE
  local f
  for f in /proc/"$1"/fdinfo/*; do
    awk '$1 == "prog_id:" { id = $2 } $1 == "run_time_ns:" { t = $2 } $1 == "run_cnt:" { c = $2 }
      END { if (id != "" && t != "") print id, t, c }' "$f" 2>/dev/null
  done | sort -u -k1,1n >"$2"
  bpftool prog show 2>/dev/null | awk '/^[0-9]+: / { id = $1; sub(":", "", id);
      for (i = 2; i < NF; i++) if ($i == "name") { print id, $(i + 1); break } }' >"$2.names"
}

# Total BPF ns between two snapshots, divided by N.
bpf_per() { # SNAP0 SNAP1 N
  awk -v n="$3" 'NR == FNR { t0[$1] = $2; next } { s += $2 - t0[$1] }
    END { printf "%.0f", (n > 0 ? s / n : 0) }' "$1" "$2"
}

# Per program: "name ns/req runs/req", largest first, into FILE.
bpf_breakdown() { # SNAP0 SNAP1 N FILE
  awk -v n="$3" 'FILENAME == ARGV[1] { name[$1] = $2; next }
    FILENAME == ARGV[2] { t0[$1] = $2; c0[$1] = $3; next }
    { dt = $2 - t0[$1]; dc = $3 - c0[$1]; if (dc <= 0 || n <= 0) next;
      printf "%s %.0f %.2f\n", (($1 in name) ? name[$1] : "prog" $1), dt / n, dc / n }' \
    "$2.names" "$1" "$2" | sort -k2,2nr >"$4"
}

# Server spans the agent made so far, from its Prometheus endpoint (the sum
# of the http.server.request.duration counts). The runtime benches count
# spans this way rather than by printing them: a JSON line per span, made
# on the server's core, would be part of what they measure (about 20 us a
# span with --print json).
prom_server_spans() { # PORT
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk '/^http_server_request_duration_seconds_count/ { s += $NF } END { printf "%d", s }'
}
