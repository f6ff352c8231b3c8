#!/usr/bin/env bash
# Sourced by scripts/setup.sh (and so scripts/test.sh) and scripts/fuzz.sh.
#
# tandem_ccache COMPILER: "ccache COMPILER" when ccache is installed, else
# COMPILER. meson puts ccache before the compiler by itself only when CC and
# CXX are unset; the builds here set them, and without ccache every build of
# a fresh clone (build/, the clang sanitizer builds of scripts/test.sh and
# scripts/fuzz.sh) compiled everything again, and the package and wire-peer
# builds, which are cached, found none of build/'s objects (hash_dir = false
# in ccache.conf lets other directories share them).
tandem_ccache() {
  if command -v ccache >/dev/null; then echo "ccache $1"; else echo "$1"; fi
}
