#!/usr/bin/env bash
# Builds Tandem's Debian package (debian/: debhelper + meson) from a clean
# clone of this repository, with dpkg-buildpackage -b -us -uc, and puts the
# .deb files into OUT (default $TANDEM_BUILD_DIR/deb, i.e. build/deb).
#
# What is packaged: the committed HEAD plus the changes to tracked files
# (`git stash create`); untracked files are not, and a warning names them.
# A package of the same sources already in OUT is reused (the hash of the
# tree but tests/ and scripts/ is in OUT/tree), so the suite's package test
# builds once per change to what is packaged. The clone
# always lives in $TANDEM_BUILD_DIR/deb-src, so ccache serves a rebuild.
#
# Usage: scripts/package.sh [--out DIR] [--force]
# Prints the path of the tandem_*.deb on its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
out="$build/deb"
force=0
while (($#)); do
  case "$1" in
    --out) out="$2"; shift ;;
    --force) force=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$build" "$out"
out="$(cd "$out" && pwd)"

cd "$root"
rev="$(git stash create 2>/dev/null || true)"
rev="${rev:-HEAD}"
# The package's sources: all but tests/ and scripts/, which it does not
# contain (a change to a test does not make a new package).
tree="$(git ls-tree -r "$rev" | grep -v -P '\t(tests|scripts)/' | sha1sum | cut -d' ' -f1)"
untracked="$(git ls-files --others --exclude-standard -- . ':!build*' | head -5)"
if [[ -n "$untracked" ]]; then
  echo "package.sh: untracked files are not packaged: $(echo "$untracked" | tr '\n' ' ')" >&2
fi
deb="$(ls "$out"/tandem_*_amd64.deb 2>/dev/null | head -1 || true)"
if ((!force)) && [[ -n "$deb" && -f "$out/tree" && "$(cat "$out/tree")" == "$tree" ]]; then
  echo "package.sh: $deb is of this source tree ($tree); reused" >&2
  echo "$deb"
  exit 0
fi

src="$build/deb-src"
rm -rf "$src"
git clone --quiet --no-checkout --shared "$root" "$src"
git -C "$src" fetch --quiet "$root" "$rev" 2>/dev/null || true
git -C "$src" checkout --quiet --detach "$rev"
# debhelper gives the build a HOME of its own, so ccache would not find the
# user's configuration (cache directory, base_dir) and start a cold cache:
# name them in the environment, which the build keeps.
if command -v ccache >/dev/null; then
  export CCACHE_DIR="${CCACHE_DIR:-$(ccache -k cache_dir)}"
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(ccache -k base_dir)}"
  export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-$(ccache -k max_size)}"
fi
start=$(date +%s)
(
  cd "$src"
  DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck noautodbgsym parallel=$(nproc)}" \
    dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1
) || { tail -40 "$out/build.log" >&2; echo "package.sh: dpkg-buildpackage failed ($out/build.log)" >&2; exit 1; }
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
mv "$build"/tandem_*.deb "$build"/tandem_*.buildinfo "$build"/tandem_*.changes "$out"/ 2>/dev/null || true
echo "$tree" >"$out/tree"
echo "package.sh: built in $(($(date +%s) - start)) s" >&2
ls "$out"/tandem_*_amd64.deb | head -1
