#!/usr/bin/env bash
# Builds a tandem-control that speaks the NEXT backbone wire format version
# (meson -Dwire_version=N+1, N from mirror/wire.h) into build-wire/, for the
# test that pairs two releases of different wire formats
# (tests/integration/test_pair_versions.py; docs/operations.md, "Rolling
# upgrade"). Only tandem-control differs between such releases: the switches'
# heartbeats are not the wire format. The suite runs this as a phase of its
# own so that the build's minutes are not taken from the integration cap.
#
# Usage: scripts/build_wire_peer.sh    (TANDEM_WIRE_BUILD_DIR overrides the folder)
# Prints the path of the built binary on its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_WIRE_BUILD_DIR:-$root/build-wire}"
current="$(sed -n 's/^#define TANDEM_WIRE_VERSION \([0-9]\+\)$/\1/p' "$root/mirror/wire.h")"
[[ -n "$current" ]] || { echo "build_wire_peer.sh: no TANDEM_WIRE_VERSION in mirror/wire.h" >&2; exit 1; }
next=$((current + 1))
if [[ ! -f "$build/build.ninja" ]]; then
  wipe=()
  [[ -d "$build/meson-private" ]] && wipe=(--wipe)
  meson setup "${wipe[@]}" -Dwire_version="$next" -Dtests=false -Dman_pages=disabled \
    "$build" "$root" >/dev/null
else
  meson configure -Dwire_version="$next" "$build" >/dev/null
fi
jobs=()
[[ -n "${TANDEM_NINJA_JOBS:-}" ]] && jobs=(-j "$TANDEM_NINJA_JOBS")
# The same flags as build/ but in mirror/: ccache serves build/'s objects,
# which name another directory in their debug info (as debian/rules does).
export CCACHE_NOHASHDIR=1
ninja -C "$build" "${jobs[@]}" control/tandem-control >/dev/null
echo "$build/control/tandem-control"
