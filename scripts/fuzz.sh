#!/usr/bin/env bash
# Builds every cargo-fuzz target (proto/fuzz, crypto/fuzz, coordinator/fuzz) and
# runs each for a bounded time, then prints target / executions / crashes.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; without TARGETs every target runs, one after
# the other. Exits non-zero if any target crashed (a panic, a failed check, a
# sanitizer report, a timeout or running out of memory); the input that did it is
# kept in <crate>/fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run <target> <file>` in that directory).
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Builds go to CARGO_TARGET_DIR (default ~/.cache/cohort-fuzz-target), not to the
# workspace's target directory; the corpus grows in <crate>/fuzz/corpus/<target>/
# and each run's libFuzzer output is in <crate>/fuzz/logs/<target>.log (all
# git-ignored). FUZZ_SANITIZER picks cargo-fuzz's sanitizer (default: address).
# Not part of .ci/run: it takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
}
shift $(($# > 0 ? 1 : 0))
only=("$@")

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cohort-fuzz-target}"
export CARGO_TERM_COLOR=never
sanitizer="${FUZZ_SANITIZER:-address}"
crates=(proto/fuzz crypto/fuzz coordinator/fuzz)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz on the nightly toolchain is needed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

# proto_messages must decode every message the schemas define.
target_src=proto/fuzz/fuzz_targets/proto_messages.rs
missing=()
for proto in proto/proto/cohort/*/v1/*.proto; do
    for message in $(sed -n 's/^message \([A-Za-z0-9_]*\).*/\1/p' "$proto"); do
        grep -Eq "\\b$message\\b" "$target_src" || missing+=("$message")
    done
done
if ((${#missing[@]})); then
    echo "$target_src does not decode: ${missing[*]}" >&2
    exit 1
fi

wanted() {
    ((${#only[@]} == 0)) && return 0
    local name
    for name in "${only[@]}"; do [[ "$name" == "$1" ]] && return 0; done
    return 1
}

rows=()
failed=0
ran=0
for crate in "${crates[@]}"; do
    targets=()
    while read -r target; do
        wanted "$target" && targets+=("$target")
    done < <(cd "$crate" && cargo +nightly fuzz list)
    ((${#targets[@]})) || continue
    echo "== building $crate (sanitizer: $sanitizer)" >&2
    (cd "$crate" && cargo +nightly fuzz build --sanitizer "$sanitizer") >&2
    mkdir -p "$crate/logs"
    for target in "${targets[@]}"; do
        log="$crate/logs/$target.log"
        echo "== fuzzing $target for ${seconds}s (log: $log)" >&2
        mkdir -p "$crate/corpus/$target" "$crate/artifacts/$target"
        before=$(find "$crate/artifacts/$target" -type f | wc -l)
        status=0
        (cd "$crate" && cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" -- \
            -max_total_time="$seconds" -timeout=10 -print_final_stats=1) >"$log" 2>&1 || status=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        [[ -n "$execs" ]] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        corpus=$(find "$crate/corpus/$target" -type f | wc -l)
        new=$(($(find "$crate/artifacts/$target" -type f | wc -l) - before))
        if ((status != 0)); then
            failed=1
            artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
            rows+=("$target|${execs:-?}|$corpus|$((new > 0 ? new : 1))|${artifact:-see $log}")
        else
            rows+=("$target|${execs:-?}|$corpus|0|")
        fi
        ran=$((ran + 1))
    done
done

if ((ran == 0)); then
    echo "no fuzz target matches: ${only[*]}" >&2
    exit 2
fi

echo
printf '%-20s %14s %8s %8s  %s\n' target executions corpus crashes artifact
for row in "${rows[@]}"; do
    IFS='|' read -r target execs corpus crashes artifact <<<"$row"
    printf '%-20s %14s %8s %8s  %s\n' "$target" "$execs" "$corpus" "$crashes" "$artifact"
done
echo "(${seconds}s per target, sanitizer $sanitizer)"
exit "$failed"
