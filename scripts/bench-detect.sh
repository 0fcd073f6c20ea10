#!/usr/bin/env bash
# Detection throughput on one core, side by side in one run: evident's detection stage
# (`evident bench-detect`) and RSigma's own CLI (`rsigma engine eval`, installed here by
# cargo into .bench-detect/tools), on the same rules (the SigmaHQ set kept in
# crates/evident-detect/tests/sigmahq) and the same events (the benchmark workload as
# NDJSON), with the same field mapping; then the same with the default pack (rules/evident).
# Both runs are pinned to CPU 0; rule loading is
# timed apart from evaluation.
#
#   scripts/bench-detect.sh [EVENTS]     (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
scratch=.bench-detect
cargo build --release --locked -p evident
bin="${CARGO_TARGET_DIR:-target}/release/evident"
tools="$scratch/tools"
if [ ! -x "$tools/bin/rsigma" ]; then
  echo "== installing rsigma 0.23.0 (once)"
  cargo install rsigma --version 0.23.0 --locked --root "$tools"
fi
rm -rf "$scratch/rules" && mkdir -p "$scratch/rules"
cp -r crates/evident-detect/tests/sigmahq/rules* "$scratch/rules/"

echo "== evident bench-detect"
taskset -c 0 "$bin" bench-detect --rules "$scratch/rules" --events "$events" --dir "$scratch"

echo "== rsigma engine eval"
: > "$scratch/empty.ndjson"
now() { date +%s.%N; }
t0=$(now)
# The same logsource pruning evident applies: its events count as product `evident`.
routing=(--logsource-routing --logsource-field-map "product=@product,service=@service,category=@category"
  --event-logsource product=evident)
taskset -c 0 "$tools/bin/rsigma" engine eval -r "$scratch/rules" -p "$scratch/mapping.yml" \
  "${routing[@]}" -e "@$scratch/empty.ndjson" > /dev/null
t1=$(now)
taskset -c 0 "$tools/bin/rsigma" engine eval -r "$scratch/rules" -p "$scratch/mapping.yml" \
  "${routing[@]}" -e "@$scratch/events.ndjson" > "$scratch/rsigma.out"
t2=$(now)
python3 - "$t0" "$t1" "$t2" "$events" "$scratch/rsigma.out" <<'PY'
import sys
t0, t1, t2, n = map(float, sys.argv[1:5])
matches = sum(1 for _ in open(sys.argv[5]))
load, total = t1 - t0, t2 - t1
print(f"rsigma: rules loaded in {load:.2f} s; {int(n)} events in {total - load:.2f} s: "
      f"{n / (total - load):.0f} events/s, {matches} output lines")
PY

# The default pack: its Sigma rules (the statistical rule, an evident extension, left
# out for RSigma's sake), correlations included, on event time in both engines.
rm -rf "$scratch/pack" && mkdir -p "$scratch/pack"
python3 - rules/evident "$scratch/pack" <<'PY'
import os, sys
src, dst = sys.argv[1:3]
for name in sorted(os.listdir(src)):
    docs = open(os.path.join(src, name)).read().split("\n---\n")
    kept = [d for d in docs if "\nanomaly:" not in "\n" + d]
    open(os.path.join(dst, name), "w").write("\n---\n".join(kept))
PY
echo "== evident bench-detect --correlate, default pack"
taskset -c 0 "$bin" bench-detect --rules "$scratch/pack" --events "$events" --dir "$scratch" --correlate
echo "== rsigma engine eval, default pack"
t0=$(now)
# As the service runs them: event time from `time`, window event ids kept as evidence,
# rules that only feed a correlation not reported on their own.
taskset -c 0 "$tools/bin/rsigma" engine eval -r "$scratch/pack" -p "$scratch/mapping.yml" \
  "${routing[@]}" --timestamp-field time --correlation-event-mode refs \
  --max-correlation-events 100 --no-detections \
  -e "@$scratch/events.ndjson" > "$scratch/rsigma-pack.out"
t1=$(now)
python3 - "$t0" "$t1" "$events" "$scratch/rsigma-pack.out" <<'PY'
import sys
t0, t1, n = map(float, sys.argv[1:4])
matches = sum(1 for _ in open(sys.argv[4]))
print(f"rsigma: default pack, {int(n)} events in {t1 - t0:.2f} s (loading included): "
      f"{n / (t1 - t0):.0f} events/s, {matches} output lines")
PY
