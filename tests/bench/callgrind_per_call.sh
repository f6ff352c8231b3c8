#!/bin/sh
# Instructions per call of the per-packet header work (Parse,
# UdpCsumWithoutEndpoints, RewriteHeaders), counted by callgrind in
# packet_bench: exact and repeatable where timings on a shared machine are not.
#   tests/bench/callgrind_per_call.sh build/tests/bench/packet_bench 'ipv:6/payload:200/partial:0'
set -e
[ $# -eq 2 ] || { echo "usage: $0 PACKET_BENCH FILTER" >&2; exit 2; }
out=$(mktemp)
valgrind --tool=callgrind --callgrind-out-file=$out "$1" --benchmark_filter="$2" --benchmark_min_time=0.01 >/dev/null 2>&1
callgrind_annotate --tree=calling --inclusive=yes $out 2>/dev/null | grep -E "=> .*sw::(Parse|UdpCsumWithoutEndpoints|RewriteHeaders)\(" | sed -E 's/^ *([0-9,]+) .*sw::([A-Za-z]+)\(.*\(([0-9,]+)x\)/\1 \2 \3/' | tr -d , | awk '{printf "%s %.0f\n", $2, $1/$3; t+=$1/$3} END {printf "total %.0f\n", t}'
rm -f $out
