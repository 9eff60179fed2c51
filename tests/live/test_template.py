#!/usr/bin/env python3
"""Live: the runtime-plugin template (sdk/template/runtime) as a third party
would use it.

  1. The SDK is installed from this build into a temporary prefix
     (cmake --install --prefix), and the template is copied out of the tree
     and built with nothing but `pkg-config sonde-sdk` from that prefix, clang
     and bpftool (vmlinux.h from this kernel's BTF): with its Makefile and
     with its CMakeLists.txt. Each .so exports only sonde_plugin_entry.
  2. The .so is dropped into a plugin directory and the agent runs with it,
     watching one Python process (--pid). The plugin must say its BPF object
     loaded and that it probed getaddrinfo in that process.
  3. The process makes OK successful and BAD failing getaddrinfo() calls
     (numeric hosts only: no DNS, no /etc/hosts), counted by the program
     itself; another, unwatched process makes calls at the same time. The
     plugin's counter on /metrics (example_getaddrinfo_calls_total, its
     records turned into counts) must equal the watched program's own
     numbers, split by error.type, and the unwatched calls must not appear.
     At exit the plugin's totals line must agree, with no record lost or bad.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sonde_live import (BUILD, SRC, Agent, Proc, cannot_run, check, check_eq, fetch, finish,
                        free_port, prom_sum, require_live, workdir)

N_OK = 7
N_BAD = 3

# The program whose calls are counted: it waits for "go OK BAD" on stdin,
# calls getaddrinfo, reports its own numbers on stderr, then waits for EOF.
CALLER = r"""
import socket, sys
sys.stderr.write("ready\n"); sys.stderr.flush()
cmd = sys.stdin.readline().split()
ok = bad = 0
for i in range(int(cmd[1])):
    socket.getaddrinfo("127.0.0.%d" % (i + 1), 80, flags=socket.AI_NUMERICHOST)
    ok += 1
for i in range(int(cmd[2])):
    try:
        socket.getaddrinfo("no-such-host-%d" % i, 80, flags=socket.AI_NUMERICHOST)
    except socket.gaierror as e:
        if e.errno == socket.EAI_NONAME:
            bad += 1
sys.stderr.write("done ok=%d bad=%d\n" % (ok, bad)); sys.stderr.flush()
sys.stdin.read()
"""

# An unwatched process calling getaddrinfo while the watched one does.
OTHER = r"""
import socket
for i in range(50):
    socket.getaddrinfo("127.0.1.%d" % (i + 1), 80, flags=socket.AI_NUMERICHOST)
"""


def run(cmd, env=None, cwd=None):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)


def exports(so):
    r = run(["nm", "-D", "--defined-only", so])
    return sorted({l.split()[2] for l in r.stdout.splitlines()
                   if len(l.split()) == 3 and l.split()[1] in "TDBRVWi"})


def wait_text(fn, needle, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if needle in fn():
            return True
        time.sleep(0.1)
    return False


def metric_counts(port):
    text = fetch(f"http://127.0.0.1:{port}/metrics")
    name = "example_getaddrinfo_calls_total"
    total = prom_sum(text, name)
    return total, prom_sum(text, name, error_type="EAI_NONAME")


def main():
    require_live("clang", "bpftool", "make", "cmake", "pkg-config", "nm")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        cannot_run("the kernel has no BTF (/sys/kernel/btf/vmlinux): no vmlinux.h for CO-RE")
    work = workdir("template-rt")

    # --- 1. the SDK installed into a prefix, the template built out of tree --
    prefix = os.path.join(work, "prefix")
    r = run(["cmake", "--install", BUILD, "--prefix", prefix])
    check(r.returncode == 0, "cmake --install of the build into a prefix" +
          ("" if r.returncode == 0 else f" ({r.stderr.strip()[-200:]})"))
    pcdir = os.path.join(prefix, "lib", "pkgconfig")
    check(os.path.exists(os.path.join(prefix, "include", "sonde", "bpf.h")),
          "the installed SDK has sonde/bpf.h")
    # The installed .pc names the configured prefix; --define-prefix makes
    # pkg-config derive it from where the file is (a relocated install).
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG="pkg-config --define-prefix")
    r = run(["pkg-config", "--define-prefix", "--variable=includedir", "sonde-sdk"], env=env)
    check_eq(r.stdout.strip(), os.path.join(prefix, "include"), "pkg-config finds the installed SDK")

    src_make = os.path.join(work, "tmpl-make")
    shutil.copytree(os.path.join(SRC, "sdk", "template", "runtime"), src_make)
    r = run(["make", "-C", src_make, "CFLAGS=-O2 -g -Wall -Wextra -Werror -Wno-unused-parameter"],
            env=env)
    check(r.returncode == 0, "the runtime template builds with its Makefile" +
          ("" if r.returncode == 0 else f" ({r.stderr.strip()[-300:]})"))
    so = os.path.join(src_make, "getaddrinfo.so")
    if r.returncode != 0 or not os.path.exists(so):
        finish()
    check_eq(exports(so), ["sonde_plugin_entry"], "Makefile build: the .so exports only the entry")

    src_cmake = os.path.join(work, "tmpl-cmake")
    shutil.copytree(os.path.join(SRC, "sdk", "template", "runtime"), src_cmake)
    bdir = os.path.join(src_cmake, "build")
    r = run(["cmake", "-S", src_cmake, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release"], env=env)
    if r.returncode == 0:
        r = run(["cmake", "--build", bdir], env=env)
    check(r.returncode == 0, "the runtime template builds with CMake" +
          ("" if r.returncode == 0 else f" ({(r.stderr or r.stdout).strip()[-300:]})"))
    cso = os.path.join(bdir, "getaddrinfo.so")
    check(os.path.exists(cso) and exports(cso) == ["sonde_plugin_entry"],
          "CMake build: the .so exports only the entry")

    # --- 2. dropped into a plugin directory, the agent runs with it ----------
    drop = os.path.join(work, "plugins")
    os.makedirs(drop)
    shutil.copy(so, os.path.join(drop, "getaddrinfo.so"))
    caller_py = os.path.join(work, "caller.py")
    with open(caller_py, "w") as f:
        f.write(CALLER)
    other_py = os.path.join(work, "other.py")
    with open(other_py, "w") as f:
        f.write(OTHER)
    caller = Proc([sys.executable, caller_py], stdin=subprocess.PIPE)
    check(wait_text(caller.stderr_text, "ready"), "the calling program started")
    mport = free_port()
    agent = Agent("--plugin-dir", drop, "--pid", str(caller.pid), "--prometheus-port", str(mport),
                  "-v")
    try:
        err = agent.stderr_text
        check(wait_text(err, f"pid {caller.pid}: getaddrinfo probed in"),
              "the plugin probed getaddrinfo in the watched process")
        check("[getaddrinfo] info: BPF object loaded" in err(), "its BPF object loaded")
        for l in err().splitlines():
            if "[getaddrinfo]" in l:
                print("     " + l.strip())

        # --- 3. calls, counted by the program and by the plugin ---------------
        other = subprocess.Popen([sys.executable, other_py])
        caller.p.stdin.write(f"go {N_OK} {N_BAD}\n".encode())
        caller.p.stdin.flush()
        check(wait_text(caller.stderr_text, "done "), "the calling program made its calls")
        other.wait(30)
        check_eq(other.returncode, 0, "the unwatched program made its calls")
        done = [l for l in caller.stderr_text().splitlines() if l.startswith("done ")][0]
        own = dict(kv.split("=") for kv in done.split()[1:])
        check_eq((int(own["ok"]), int(own["bad"])), (N_OK, N_BAD),
                 "the program's own count (successful, EAI_NONAME)")
        want = (float(N_OK + N_BAD), float(N_BAD))
        end = time.time() + 10
        got = metric_counts(mport)
        while got != want and time.time() < end:
            time.sleep(0.2)
            got = metric_counts(mport)
        check_eq(got, want, "example_getaddrinfo_calls_total on /metrics (all, error_type=EAI_NONAME) "
                            "= the watched program's calls; the unwatched one's not counted")
        # The program exits: process_gone, where the plugin reads its BPF
        # counters (records written, lost) one last time.
        caller.p.stdin.close()
        caller.p.wait(10)
        time.sleep(1.0)
    finally:
        agent.stop()
        caller.stop()
    tail = [l for l in agent.stderr_text().splitlines() if "[getaddrinfo]" in l and "processes probed" in l]
    print("     " + (tail[-1].strip() if tail else "(no totals line)"))
    n = N_OK + N_BAD
    check(bool(tail) and f"getaddrinfo calls {n} (failed {N_BAD})" in tail[-1]
          and f"records written by the kernel {n}, lost 0;" in tail[-1]
          and "bad records 0" in tail[-1],
          "the plugin's totals at exit: every call a record, none lost, none bad")
    finish()


if __name__ == "__main__":
    main()
