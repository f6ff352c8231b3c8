#!/usr/bin/env bash
# Prepares a Debian 12 machine to build, test and demo Tandem, then builds it.
# Idempotent: packages are installed (and `apt-get update` run) only when one
# is missing; hugepages are reserved only when too few are; meson configures
# once and ninja rebuilds only what changed.
#
# Run it as root, or source it from another script (demo.sh, test.sh): it then
# leaves these variables set for the caller:
#   TANDEM_ROOT        the repository root
#   TANDEM_BUILD_DIR   the build directory (default $TANDEM_ROOT/build)
#   TANDEM_HUGEPAGES   1 when hugepages are reserved and mounted, else 0
#   TANDEM_EAL_MEM     EAL memory arguments to use: "" or "--no-huge -m 512"
# The hugepage verdict is also written to $TANDEM_BUILD_DIR/tandem-setup.env
# so that tests started on their own (pytest) read the same answer.
#
# Environment knobs: TANDEM_BUILD_DIR (another build directory),
# TANDEM_NINJA_JOBS (ninja -j), TANDEM_SKIP_PACKAGES=1, TANDEM_SKIP_BUILD=1,
# TANDEM_MESON_OPTIONS (extra `meson setup` options, used when the build
# directory is first configured, e.g. "-Db_sanitize=address,undefined"),
# TANDEM_CC / TANDEM_CXX (compilers for that first configuration; by default
# cc and c++ behind ccache, see tandem_ccache).

# Everything the project needs from Debian: the build (compilers, meson,
# DPDK, libbpf/libxdp, Abseil, GoogleTest, Benchmark, gRPC/protobuf, SQLite,
# toml++, httplib, prometheus-cpp), the test beds (iproute2, bridge-utils, ethtool, tcpdump,
# iputils-ping, scapy, pytest with pytest-timeout, ffmpeg, openssl for the
# control API's test certificates, faketime for the pair's clock-step test,
# python3-prometheus-client's text parser and
# prometheus's promtool to check /metrics and the alert rules), BIRD 2 (bird2:
# the routing daemon of routed mode, docs/routed.md, and the routers of the
# two-DC test bed), etcd for the fleet's directory and its tests, the tools the
# docs mention (dpdk-testpmd, dpdk-devbind.py, dpdk-telemetry.py come with dpdk
# and dpdk-dev; dpdk-dumpcap too), and matplotlib for the benchmark's plot
# (scripts/bench/plot.py).
# Operations (docs/operations.md): libsystemd-dev (sd_notify: Type=notify and
# the watchdog), debhelper, dpkg-dev and help2man (the Debian package and its
# man pages, scripts/package.sh), python3-grpcio (the tests' gRPC health and
# reflection client), tmux (the test of `tandemctl top`), bash-completion,
# systemd (systemd-analyze verify of the units), and what the package test
# calls (man-db, adduser, libc-bin's getent, dpkg).
# Every program the suite runs is also in the table of
# scripts/lib/check_tools.sh, which names what is missing; its test checks
# that each package of that table is here.
TANDEM_DEBIAN_PACKAGES=(
  build-essential g++ clang llvm clang-format clang-tidy pkg-config git
  meson ninja-build
  dpdk dpdk-dev libdpdk-dev libnuma-dev libpcap-dev libelf-dev zlib1g-dev
  dpdk-doc gcc openvswitch-common openvswitch-switch openvswitch-switch-dpdk
  libbpf-dev libxdp-dev
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libsqlite3-dev libtomlplusplus-dev libcpp-httplib-dev prometheus-cpp-dev
  python3 python3-scapy python3-pytest python3-pytest-timeout python3-matplotlib
  python3-prometheus-client prometheus ffmpeg openssl
  iproute2 bridge-utils ethtool tcpdump iputils-ping procps psmisc util-linux mount faketime
  bash coreutils bsdutils mawk bird2 etcd-server etcd-client
  libsystemd-dev debhelper dpkg-dev help2man python3-grpcio tmux bash-completion systemd
  man-db adduser libc-bin dpkg ccache
)

# etcd's API definitions (.proto), from which the build generates the fleet's
# etcd client (control/fleet/meson.build). Debian ships them in
# golang-etcd-server-dev, whose dependencies are 138 Go source packages
# (450 MB) that the build does not use: the package is downloaded and only
# its .proto files are kept here, unless it is installed anyway.
TANDEM_ETCD_PROTO_PACKAGE=golang-etcd-server-dev
TANDEM_ETCD_PROTO_DIR=/var/cache/tandem/etcd-proto

tandem_log() { echo "setup: $*" >&2; }

tandem_install_packages() {
  if [[ "${TANDEM_SKIP_PACKAGES:-0}" == 1 ]]; then return 0; fi
  local missing=() p
  for p in "${TANDEM_DEBIAN_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ $EUID -ne 0 ]]; then
    tandem_log "missing packages (${missing[*]}); run as root to install them"
    return 1
  fi
  tandem_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run (unattended upgrades, a parallel set-up) holds the lock:
  # wait for it rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -q || return 1
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" || return 1
}

tandem_fetch_etcd_protos() {
  if [[ "${TANDEM_SKIP_PACKAGES:-0}" == 1 ]]; then return 0; fi
  local installed=/usr/share/gocode/src/go.etcd.io/etcd
  local want=etcdserver/etcdserverpb/rpc.proto
  if [[ -f "$installed/$want" || -f "$TANDEM_ETCD_PROTO_DIR/$want" ]]; then return 0; fi
  if [[ $EUID -ne 0 ]]; then
    tandem_log "etcd's .proto files missing ($TANDEM_ETCD_PROTO_DIR); run as root to fetch them"
    return 1
  fi
  tandem_log "fetching etcd's .proto files from $TANDEM_ETCD_PROTO_PACKAGE"
  local tmp
  tmp=$(mktemp -d) || return 1
  # apt-get download writes into the current directory, as user _apt when it can.
  chown _apt "$tmp" 2>/dev/null
  if ! (cd "$tmp" && apt-get -q download "$TANDEM_ETCD_PROTO_PACKAGE" >/dev/null); then
    apt-get -o DPkg::Lock::Timeout=600 update -q &&
      (cd "$tmp" && apt-get -q download "$TANDEM_ETCD_PROTO_PACKAGE" >/dev/null) ||
      { rm -rf "$tmp"; return 1; }
  fi
  dpkg-deb -x "$tmp"/"$TANDEM_ETCD_PROTO_PACKAGE"_*.deb "$tmp/x" || { rm -rf "$tmp"; return 1; }
  local src="$tmp/x$installed" f
  mkdir -p "$TANDEM_ETCD_PROTO_DIR.new" &&
    (cd "$src" && find . -name '*.proto' -print0 | xargs -0 cp --parents -t "$TANDEM_ETCD_PROTO_DIR.new") &&
    cp "$tmp/x/usr/share/doc/$TANDEM_ETCD_PROTO_PACKAGE/copyright" "$TANDEM_ETCD_PROTO_DIR.new/" &&
    rm -rf "$TANDEM_ETCD_PROTO_DIR" && mv "$TANDEM_ETCD_PROTO_DIR.new" "$TANDEM_ETCD_PROTO_DIR"
  f=$?
  rm -rf "$tmp" "$TANDEM_ETCD_PROTO_DIR.new"
  return $f
}

# Reserves 1024 x 2 MB hugepages and mounts hugetlbfs on /dev/hugepages.
# Sets TANDEM_HUGEPAGES=1 only when enough pages are free and the mount is
# there; DPDK processes otherwise run with --no-huge -m 512.
tandem_setup_hugepages() {
  local want=1024 need_free=256
  local nr
  nr=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
  if ((nr < want)); then
    echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null ||
      tandem_log "could not reserve hugepages (read-only /proc/sys?)"
  fi
  if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages 2>/dev/null
    mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null ||
      tandem_log "could not mount hugetlbfs on /dev/hugepages"
  fi
  local free
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo 2>/dev/null)
  if [[ -n "$free" ]] && ((free >= need_free)) &&
    grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    TANDEM_HUGEPAGES=1
    TANDEM_EAL_MEM=""
  else
    tandem_log "hugepages unavailable (free=${free:-?}); DPDK runs with --no-huge -m 512"
    TANDEM_HUGEPAGES=0
    TANDEM_EAL_MEM="--no-huge -m 512"
  fi
  export TANDEM_HUGEPAGES TANDEM_EAL_MEM
}

# shellcheck source=scripts/lib/ccache.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/ccache.sh"

tandem_build() {
  if [[ "${TANDEM_SKIP_BUILD:-0}" == 1 ]]; then return 0; fi
  local jobs=()
  if [[ -n "${TANDEM_NINJA_JOBS:-}" ]]; then jobs=(-j "$TANDEM_NINJA_JOBS"); fi
  if [[ ! -f "$TANDEM_BUILD_DIR/build.ninja" ]]; then
    tandem_log "configuring $TANDEM_BUILD_DIR"
    local wipe=()
    # A configure that failed half-way leaves meson-private/ behind.
    if [[ -d "$TANDEM_BUILD_DIR/meson-private" ]]; then wipe=(--wipe); fi
    local opts=()
    read -r -a opts <<<"${TANDEM_MESON_OPTIONS:-}"
    CC="${TANDEM_CC:-${CC:-$(tandem_ccache cc)}}" CXX="${TANDEM_CXX:-${CXX:-$(tandem_ccache c++)}}" \
      meson setup "${wipe[@]}" "${opts[@]}" "$TANDEM_BUILD_DIR" "$TANDEM_ROOT" || return 1
  fi
  tandem_log "building in $TANDEM_BUILD_DIR"
  ninja -C "$TANDEM_BUILD_DIR" "${jobs[@]}" || return 1
}

tandem_record_setup() {
  mkdir -p "$TANDEM_BUILD_DIR" &&
    printf 'TANDEM_HUGEPAGES=%s\nTANDEM_EAL_MEM="%s"\n' \
      "$TANDEM_HUGEPAGES" "$TANDEM_EAL_MEM" >"$TANDEM_BUILD_DIR/tandem-setup.env"
}

tandem_setup_main() {
  TANDEM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  TANDEM_BUILD_DIR="${TANDEM_BUILD_DIR:-$TANDEM_ROOT/build}"
  export TANDEM_ROOT TANDEM_BUILD_DIR
  tandem_install_packages || { tandem_log "package installation failed"; return 1; }
  tandem_fetch_etcd_protos || { tandem_log "could not fetch etcd's .proto files"; return 1; }
  # Every program the suite, the demo and the benchmarks run, named with its
  # package when missing: at once, not test by test.
  # shellcheck source=scripts/lib/check_tools.sh
  source "$TANDEM_ROOT/scripts/lib/check_tools.sh" &&
    tandem_check_tools || { tandem_log "programs the suite runs are missing (above)"; return 1; }
  tandem_setup_hugepages
  tandem_build || { tandem_log "build failed"; return 1; }
  tandem_record_setup
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  tandem_setup_main "$@"
  tandem_log "ready: build in $TANDEM_BUILD_DIR, hugepages=$TANDEM_HUGEPAGES"
else
  tandem_setup_main "$@" || return 1
fi
