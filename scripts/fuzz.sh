#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while: scripts/fuzz.sh [SECONDS] (default 30 each).
#
# Each target fuzzes a scratch copy of its committed seed corpus (fuzz/corpus/<target>),
# so new corpus entries never land in the work tree; crash inputs go to
# fuzz/artifacts/<target>/ (git-ignored). Honours CARGO_TARGET_DIR if set.
# Prints one summary line per target and exits non-zero if any target failed.
set -euo pipefail

duration="${1:-30}"
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "usage: $0 [SECONDS]   (a positive whole number of seconds per target)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

targets=(fuzz_ndjson_ingest fuzz_query fuzz_sigma_rule fuzz_decrypt fuzz_proof_verify fuzz_syslog_framing fuzz_syslog_message)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo fuzz not found; installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# libFuzzer needs unstable rustc flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1

scratch="$(mktemp -d "${TMPDIR:-/tmp}/evident-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

summaries=()
failed=0
for target in "${targets[@]}"; do
    corpus="$scratch/corpus-$target"
    log="$scratch/$target.log"
    mkdir -p "$corpus"
    cp -R "fuzz/corpus/$target/." "$corpus/"

    extra=()
    case "$target" in
        fuzz_ndjson_ingest) extra+=("-dict=$root/fuzz/dict/json.dict") ;;
        fuzz_sigma_rule) extra+=("-dict=$root/fuzz/dict/sigma.dict" "-max_len=4096") ;;
    esac

    echo "== $target: building and fuzzing for ${duration}s" >&2
    status=0
    cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$duration" -rss_limit_mb=2048 -timeout=10 \
        "${extra[@]}" >"$log" 2>&1 || status=$?

    done_line="$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)"
    if [ "$status" -eq 0 ] && [ -n "$done_line" ]; then
        runs="$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/' <<<"$done_line")"
        secs="$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/' <<<"$done_line")"
        [ "$secs" -gt 0 ] || secs=1
        summaries+=("$target: ok, $runs runs in ${secs}s, $((runs / secs)) exec/s")
    else
        failed=1
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)"
        # libFuzzer's last status line ("#N ... exec/s: E ...") tells how far it got.
        progress="$(grep -E '^#[0-9]+.*exec/s: [0-9]+' "$log" | tail -n 1 |
            sed -E 's/^#([0-9]+).*exec\/s: ([0-9]+).*/after \1 runs at \2 exec\/s/' || true)"
        summaries+=("$target: FAILED (exit $status)${progress:+ $progress}${artifact:+, input: $artifact}")
        mkdir -p "fuzz/artifacts/$target"
        cp "$log" "fuzz/artifacts/$target/last-run.log"
        echo "---- $target failed; full log: fuzz/artifacts/$target/last-run.log ----" >&2
        grep -m 1 -A 2 'panicked at' "$log" | cut -c 1-2000 >&2 || true
        tail -n 25 "$log" | cut -c 1-2000 >&2
        echo "---- end of $target ----" >&2
    fi
done

echo
for line in "${summaries[@]}"; do
    echo "$line"
done
exit "$failed"
