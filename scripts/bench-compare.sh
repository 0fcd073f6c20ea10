#!/usr/bin/env bash
# Ingest speed of the working tree against commit REF, in one run: builds REF beside the
# working tree, then runs the same ingest benchmark on both binaries, alternated, ROUNDS
# times each, and prints every run, the medians and the ratio of the medians.
#
#   scripts/bench-compare.sh REF [ROUNDS] [EVENTS]     (defaults: 3 rounds, 200000 events)
#
# The benchmark is `evident bench --events EVENTS --clients 16 --batch 1000`, which also
# measures the naive security_events table in the same run (`ratio`). REF is built from
# `git archive` in .bench-compare/, with a cargo target directory of its own
# (BENCH_COMPARE_TARGET, default .bench-compare/target): two checkouts of this workspace
# must not share one, as their crates would overwrite each other's builds. Its binary is
# kept, so comparing against the same commit again builds nothing. The machine should be
# otherwise idle; the figures still move by ±10% between runs, which is why both binaries
# run alternately and medians are compared.
#
# BENCH_COMPARE_HEAD=COMMIT compares that commit, built the same way as REF, instead of
# the working tree (to measure an earlier step again in a later run).
set -euo pipefail
cd "$(dirname "$0")/.."

ref="${1:?usage: scripts/bench-compare.sh REF [ROUNDS] [EVENTS]}"
rounds="${2:-3}"
events="${3:-200000}"
commit=$(git rev-parse --verify "${ref}^{commit}")
short=$(git rev-parse --short "$commit")
root="$PWD/.bench-compare"
ref_target="${BENCH_COMPARE_TARGET:-$root/target}"

# Builds commit $1 from `git archive` into $root/bin (once) and prints its binary.
build_commit() {
  local commit=$1 bin="$root/bin/evident-$1"
  if [ ! -x "$bin" ]; then
    echo "== building $(git rev-parse --short "$commit") in $root" >&2
    local src="$root/src-$commit"
    rm -rf "$src"
    mkdir -p "$src" "$root/bin"
    git archive "$commit" | tar -x -C "$src"
    CARGO_TARGET_DIR="$ref_target" cargo build --release --locked -p evident \
      --manifest-path "$src/Cargo.toml" >&2
    cp "$ref_target/release/evident" "$bin"
    rm -rf "$src"
  fi
  echo "$bin"
}

if [ -n "${BENCH_COMPARE_HEAD:-}" ]; then
  head_commit=$(git rev-parse --verify "${BENCH_COMPARE_HEAD}^{commit}")
  head_bin=$(build_commit "$head_commit")
  head_name=$(git rev-parse --short "$head_commit")
else
  echo "== building the working tree"
  cargo build --release --locked -p evident
  head_bin="${CARGO_TARGET_DIR:-$PWD/target}/release/evident"
  head_name=working
fi
ref_bin=$(build_commit "$commit")

runs="$root/runs"
mkdir -p "$runs"
field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: > "$runs/$short.tsv"
: > "$runs/head.tsv"
for round in $(seq 1 "$rounds"); do
  # Alternate which binary goes first, so neither always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="$short head"; else order="head $short"; fi
  for who in $order; do
    bin="$head_bin"
    [ "$who" = head ] || bin="$ref_bin"
    rm -rf "$runs/scratch"
    mkdir -p "$runs/scratch"
    line=$(cd "$runs/scratch" && "$bin" bench --events "$events" --clients 16 --batch 1000 --json 2>/dev/null | tail -n 1)
    rate=$(echo "$line" | field events_per_s)
    naive=$(echo "$line" | field naive_rows_per_s)
    ratio=$(echo "$line" | field ratio)
    printf '%s\t%s\t%s\n' "$rate" "$naive" "$ratio" >> "$runs/$who.tsv"
    printf 'round %s  %-8s %9s events/s  naive %9s rows/s  ratio %s\n' "$round" "$who" "$rate" "$naive" "$ratio"
  done
done
rm -rf "$runs/scratch"

ref_rate=$(cut -f1 "$runs/$short.tsv" | median)
head_rate=$(cut -f1 "$runs/head.tsv" | median)
ref_ratio=$(cut -f3 "$runs/$short.tsv" | median)
head_ratio=$(cut -f3 "$runs/head.tsv" | median)
echo
echo "medians over $rounds rounds, $events events, 16 clients, batches of 1000:"
printf '  %-8s %9s events/s  %sx the naive table\n' "$short" "$ref_rate" "$ref_ratio"
printf '  %-8s %9s events/s  %sx the naive table\n' "$head_name" "$head_rate" "$head_ratio"
awk -v h="$head_rate" -v r="$ref_rate" 'BEGIN { printf "  %s / %s: %.2f\n", "'"$head_name"'", "'"$short"'", h / r }'
