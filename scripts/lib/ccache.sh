#!/usr/bin/env bash
# Sourced by scripts/setup.sh (and so scripts/test.sh) and scripts/fuzz.sh.
#
# tandem_ccache COMPILER: "ccache COMPILER" when ccache is installed, else
# COMPILER. meson puts ccache before the compiler by itself only when CC and
# CXX are unset; the builds here set them, and without ccache every build of
# a fresh clone (build/, the clang sanitizer builds of scripts/test.sh and
# scripts/fuzz.sh) compiled everything again.
#
# A fresh clone is another directory: ccache's default hashes the directory
# of every -g compile, and source paths are absolute in some commands, so a
# clone (CI's above all) missed every object another clone had compiled and
# built everything again: most of the test command's first half on two cores.
# Paths under the clone are made relative and the directory left out of the
# hash; the price is that a cached object's debug info may name the clone
# that compiled it first (as debian/rules already accepts).
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export CCACHE_BASEDIR

tandem_ccache() {
  if command -v ccache >/dev/null; then echo "ccache $1"; else echo "$1"; fi
}
