#!/usr/bin/env bash
# Checks that every program and Python module the test suite, the demo and
# the benchmarks run is installed, and names the Debian package of each one
# that is missing, so that a fresh machine fails here at once instead of
# test by test (a missing `ping` used to read as "0 replies").
#
#   scripts/lib/check_tools.sh [ENTRY...]
#
# Exit 0 when all are there; else prints one line per missing entry,
# "missing: COMMAND (Debian package PACKAGE; called by WHERE)", and exits 1.
# ENTRY ("NAME PACKAGE WHERE", see below) adds entries to the table (the
# check's own test uses it). Sourced, it defines tandem_check_tools [ENTRY...].
# It runs no external command of its own (but /usr/bin/python3 for modules).
#
# The table: one entry per line, "NAME PACKAGE WHERE". NAME is a command
# looked up in PATH, or py:MODULE for a module of Debian's /usr/bin/python3.
# scripts/lib/test_check_tools.py finds the commands that the Python code of
# tests/integration/ and scripts/ runs and fails when one is not listed here,
# and when a package here is not in setup.sh's TANDEM_DEBIAN_PACKAGES. The
# shell scripts' commands are listed by hand. Commands of essential packages
# that every Debian system has (coreutils: rm, cat, sleep, stdbuf, timeout;
# bsdutils: renice; mawk: awk; dpkg, apt) are listed where the suite relies
# on them, so the list says what runs.
TANDEM_TOOLS=(
  "ip iproute2 tests/integration/helpers/netns.py,scripts/lib/driver.sh,scripts/bench_shared_nic.sh"
  "tc iproute2 tests/integration/helpers/pair.py"
  "nstat iproute2 scripts/bench/pair_backbone.py"
  "ping iputils-ping tests/integration/test_shared_nic.py,scripts/bench_shared_nic.sh"
  "ethtool ethtool tests/integration/helpers/netns.py,scripts/bench_shared_nic.sh"
  "tcpdump tcpdump tests/integration/test_pair.py,scripts/bench/failover.py"
  "sysctl procps tests/integration/helpers/netns.py,scripts/bench_shared_nic.sh"
  "setpriv util-linux tests/integration/test_control_tls.py"
  "setsid util-linux scripts/lib/driver.sh"
  "mount mount scripts/setup.sh"
  "ffmpeg ffmpeg tests/integration/helpers/rtp.py"
  "openssl openssl tests/integration/test_control_tls.py"
  "clang clang tests/integration/helpers/pair.py,switch/xdp/meson.build,scripts/fuzz.sh"
  "clang++ clang scripts/test.sh,scripts/fuzz.sh"
  "dpdk-testpmd dpdk-dev scripts/bench/runners.py,scripts/bench_shared_nic.sh"
  "g++ g++ scripts/bench/runners.py,meson.build"
  "gcc gcc scripts/bench/references.py"
  "ovsdb-tool openvswitch-common scripts/bench/references.py"
  "ovsdb-server openvswitch-common scripts/bench/references.py"
  "ovs-ofctl openvswitch-common scripts/bench/references.py"
  "ovs-appctl openvswitch-common scripts/bench/references.py"
  "ovs-vsctl openvswitch-switch scripts/bench/references.py"
  "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk openvswitch-switch-dpdk scripts/bench/references.py"
  "pkg-config pkg-config scripts/bench/runners.py,meson.build"
  "meson meson scripts/setup.sh,scripts/test.sh,scripts/bench/bench.py"
  "git git scripts/bench/bench.py"
  "ninja ninja-build scripts/setup.sh,scripts/test.sh"
  "stdbuf coreutils scripts/bench/runners.py"
  "timeout coreutils scripts/test.sh"
  "rm coreutils scripts/bench/runners.py"
  "cat coreutils tests/integration/test_testbed.py"
  "sleep coreutils tests/integration/test_testbed.py"
  "renice bsdutils scripts/test.sh"
  "ps procps scripts/test.sh"
  "awk mawk scripts/bench_shared_nic.sh"
  "/usr/bin/python3 python3 scripts/test.sh,tests/integration"
  "/bin/bash bash scripts/*.sh,scripts/lib/test_check_tools.py"
  "py:scapy python3-scapy tests/integration/tools,scripts/bench/test_gencap.py"
  "py:pytest python3-pytest scripts/test.sh"
  "py:pytest_timeout python3-pytest-timeout tests/integration/pytest.ini"
  "py:matplotlib python3-matplotlib scripts/bench/plot.py"
  "promtool prometheus tests/integration/control_helpers/metrics.py"
  "py:prometheus_client python3-prometheus-client tests/integration/control_helpers/metrics.py"
  "chrt util-linux tests/integration/helpers/dc.py"
  "umount mount tests/integration/test_pair_durability.py"
  "bird bird2 tests/integration/helpers/dc.py"
  "birdc bird2 tests/integration/helpers/dc.py"
  "etcd etcd-server tests/integration/helpers/etcd.py"
  "etcdctl etcd-client tests/integration/helpers/etcd.py"
  "faketime faketime tests/integration/test_pair_slowpath.py"
  "dpdk-dumpcap dpdk-dev tests/integration/test_ops_capture.py"
  "tmux tmux tests/integration/test_ops_top.py"
  "systemd-analyze systemd tests/integration/test_ops_units.py,tests/integration/test_package.py"
  "systemd-tmpfiles systemd tests/integration/test_ops_units.py"
  "help2man help2man dist/meson.build"
  "dpkg-buildpackage dpkg-dev scripts/package.sh"
  "dh debhelper debian/rules"
  "dpkg dpkg tests/integration/test_package.py"
  "dpkg-query dpkg tests/integration/test_package.py"
  "getent libc-bin tests/integration/test_package.py"
  "deluser adduser tests/integration/test_package.py"
  "delgroup adduser tests/integration/test_package.py"
  "man man-db tests/integration/test_package.py"
  "py:grpc python3-grpcio tests/integration/control_helpers/grpc_probe.py"
)

# Returns 1 and names each missing entry (and its package) on stderr.
tandem_check_tools() {
  local e name pkg where missing=0 pkgs=()
  local -A seen=()
  for e in "${TANDEM_TOOLS[@]}" "$@"; do
    read -r name pkg where <<<"$e"
    if [[ "$name" == py:* ]]; then
      # find_spec: present, without running the module's import-time code.
      [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c \
        'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' \
        "${name#py:}" 2>/dev/null && continue
    elif command -v "$name" >/dev/null 2>&1; then
      continue
    fi
    echo "missing: $name (Debian package $pkg; called by ${where//,/, })" >&2
    [[ -n "${seen[$pkg]:-}" ]] || pkgs+=("$pkg")
    seen[$pkg]=1
    missing=1
  done
  if ((missing)); then
    echo "check_tools: install them: apt-get install ${pkgs[*]} (scripts/setup.sh does, as root)" >&2
  fi
  return "$missing"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  tandem_check_tools "$@"
  exit $?
fi
