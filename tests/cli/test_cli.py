#!/usr/bin/env python3
"""The agent's command line as a user meets it: every bad input gives one
clear sentence and a non-zero exit, never a crash (exit by signal). Needs
no root and no kernel; the privilege check runs when the test can drop
root (setpriv)."""
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("SONDE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SONDE_BUILD") or os.path.join(SRC, "build")
SONDE = os.path.join(BUILD, "sonde")
FIX = os.path.join(BUILD, "tests", "fixtures", "plugins")
passed = failed = 0


def check(cond, what):
    global passed, failed
    print(("ok   - " if cond else "FAIL - ") + what)
    passed += bool(cond)
    failed += not cond


def run(*args, env=None, prefix=()):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("OTEL_") or k.startswith("SONDE_"):
            del e[k]
    e.update(env or {})
    r = subprocess.run([*prefix, SONDE, *args], capture_output=True, text=True, env=e, timeout=60)
    return r.returncode, r.stdout, r.stderr


def refused(what, want, *args, env=None, prefix=()):
    rc, out, err = run(*args, env=env, prefix=prefix)
    check(rc > 0 and want in err, f"{what}: exit {rc}, stderr has {want!r} ({err.strip().splitlines()[-1] if err.strip() else ''})")


tmp = tempfile.mkdtemp(prefix="sonde-cli-")
def write(name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    return p

# --- configuration files ----------------------------------------------------
bad_port = write("bad_port.yaml", "services:\n  - name: a\n    open_ports: [80-x]\n")
refused("bad port range in YAML", "bad_port.yaml:3:", "--config", bad_port)
typo = write("typo.yaml", "servics:\n  - name: a\n")
refused("unknown top-level key", "did you mean 'services'", "--config", typo)
tabs = write("tabs.yaml", "services:\n\t- name: a\n")
refused("tab in YAML", "tabs.yaml:2", "--config", tabs)
bad_print = write("print.yaml", "export:\n  print: xml\n")
refused("bad enum", "print.yaml:2:", "--config", bad_print)
bad_re = write("re.yaml", "services:\n  - name: a\n    exe_path: \"(unclosed\"\n")
refused("bad regex", "re.yaml:3:", "--config", bad_re)
refused("missing config file", "No such file", "--config", os.path.join(tmp, "absent.yaml"))
refused("config via SONDE_CONFIG", "bad_port.yaml:3:", env={"SONDE_CONFIG": bad_port})
refused("grpc protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "--open-port", "80",
        env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})

# --- flags ------------------------------------------------------------------
refused("bad --open-port", "--open-port", "--open-port", "99999")
refused("bad --pid", "--pid", "--pid", "abc")
refused("bad --exe-path regex", "not a valid regular expression", "--exe-path", "(x")
refused("bad --print", "--print", "--print", "xml", "--pid", "1")
refused("unknown flag", "try 'sonde --help'", "--frobnicate")
refused("nothing to watch", "nothing to watch")
refused("replay of a missing file", "No such file", "--replay", os.path.join(tmp, "none.sonde"))
rc, out, _ = run("--help")
check(rc == 0 and "--open-port" in out, "--help")
rc, out, _ = run("--version")
check(rc == 0 and "plugin ABI 1." in out, "--version names the ABI")

# --- plugins ------------------------------------------------------------------
pdir = os.path.join(tmp, "plugins")
os.makedirs(pdir)
for name in ("good", "abi_major", "abi_minor", "init_fails"):
    shutil.copy(os.path.join(FIX, name + ".so"), os.path.join(pdir, name + ".so"))
with open(os.path.join(FIX, "good.so"), "rb") as f:
    data = f.read()
with open(os.path.join(pdir, "truncated.so"), "wb") as f:
    f.write(data[:3000])
with open(os.path.join(pdir, "junk.so"), "w") as f:
    f.write("#!/bin/sh\necho not a plugin\n")
rc, out, err = run("--list-plugins", "--plugin-dir", pdir, "--plugin-dir", os.path.join(tmp, "missing"))
check(rc == 0, f"--list-plugins with bad files exits 0 (rc {rc})")
lines = {l.split()[0]: l for l in out.splitlines()[1:] if l.strip()}
check("loaded" in lines.get("pingpong", ""), "good fixture loaded")
check("loaded" in lines.get("http", ""), "built-in http plugin loaded from the default dir")
for f, reason in (("abi_major.so", "ABI mismatch"), ("abi_minor.so", "ABI too new"),
                  ("init_fails.so", "init() failed"), ("truncated.so", "truncated"),
                  ("junk.so", "not an ELF")):
    check("refused" in lines.get(f, "") and reason in lines.get(f, ""), f"{f} refused: {reason}")

# --- privileges ------------------------------------------------------------------
if os.geteuid() == 0 and shutil.which("setpriv"):
    refused("no privileges", "needs root", "--open-port", "80",
            prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
else:
    print("skip - privilege check: needs root to drop privileges")

shutil.rmtree(tmp)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
