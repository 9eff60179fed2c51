#!/usr/bin/env bash
# bootstrap.sh - install the Debian packages sonde needs to build, test,
# demo and bench. Idempotent: only missing packages are installed, so the
# second run costs one dpkg query. Called by `make build/demo/test/bench`
# and by .ci/run.
#
#   scripts/bootstrap.sh [build|test|demo|bench]   (default: test)
set -euo pipefail
what=${1:-test}

build_pkgs=(build-essential cmake pkg-config clang llvm bpftool libbpf-dev libelf-dev
            zlib1g-dev libyaml-dev libjansson-dev check libcurl4-openssl-dev
            libmicrohttpd-dev libssl-dev libclang-rt-dev libnghttp2-dev libdw-dev
            default-jdk-headless)
# Real peers for the live tier, and the independent OTLP decoder (protoc).
test_pkgs=(curl nginx-light redis-server redis-tools openssl python3 nodejs npm
           protobuf-compiler iproute2 procps
           librdkafka-dev kcat nghttp2-server nghttp2-client python3-grpcio
           postgresql postgresql-contrib mariadb-server mariadb-client apache2-utils
           golang-go)
bench_pkgs=(wrk libhttp-parser-dev libhiredis-dev)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  test|demo) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "bootstrap: unknown target '$what' (build|test|demo|bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  # python3/nodejs may come from elsewhere (pyenv, nvm): accept the command.
  case "$p" in
    python3) command -v python3 >/dev/null && continue ;;
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "bootstrap: not root and no sudo; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Keep packaged daemons (nginx, redis) from being started by the install:
# tests start their own instances on private ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bootstrap: done"
