#!/usr/bin/env bash
# A new user's first build, measured: a fresh clone of this repository (its
# committed HEAD) built with an empty target directory.
#
#   (a) `cargo run -p cohort-sim -- demo`: wall time until the demo prints its
#       first line (the round table's header);
#   (b) then `cargo test --workspace --no-run` on top: the time it adds.
#
# Crates are fetched before the clock starts (`cargo fetch`): download time
# depends on the network, not on the project, and crates already in ~/.cargo
# are reused. Run it on an idle machine: other builds at the same time make
# every number larger. Usage: scripts/cold-build.sh [TIMINGS_DIR]; with
# TIMINGS_DIR, cargo's --timings HTML reports of both steps are copied there.
# With COLD_BUILD_TARGET set to a directory that does not exist yet, the build
# goes there and is kept, so a later build of the same Cargo.lock (`.ci/run`
# with CARGO_TARGET_DIR pointing there) reuses the dependencies just compiled.
set -euo pipefail

repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
timings_out="${1:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone --quiet --no-hardlinks "$repo" "$work/cohort"
cd "$work/cohort"
if [ -n "${COLD_BUILD_TARGET:-}" ]; then
    if [ -e "$COLD_BUILD_TARGET" ]; then
        echo "COLD_BUILD_TARGET=$COLD_BUILD_TARGET exists: a cold build needs an empty target" >&2
        exit 1
    fi
    export CARGO_TARGET_DIR="$COLD_BUILD_TARGET"
else
    export CARGO_TARGET_DIR="$work/target"
fi
export CARGO_TERM_COLOR=never
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER # a compiler cache would hide the build

echo "commit $(git rev-parse --short HEAD); $(rustc --version); $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo fetch --locked --quiet
echo "crates fetched beforehand (already downloaded ones come from ~/.cargo): downloads are not timed"

timings=()
if [ -n "$timings_out" ]; then
    mkdir -p "$timings_out"
    timings=(--timings)
fi

# (a) until the demo's first line of output.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
start=$(now_ms)
first_line=""
while IFS= read -r line; do
    if [ -z "$first_line" ]; then
        first_line=$(now_ms)
        echo "demo printed: $line"
    fi
done < <(cargo run --locked --quiet "${timings[@]}" -p cohort-sim -- demo)
wait $! || { echo "cargo run -p cohort-sim -- demo failed" >&2; exit 1; }
if [ -z "$first_line" ]; then
    echo "the demo printed nothing" >&2
    exit 1
fi
demo_ms=$((first_line - start))
if [ -n "$timings_out" ]; then
    cp "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing-*.html "$timings_out/demo.html"
    rm -f "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing-*.html
fi

# (b) the whole test suite's build, on top.
start=$(now_ms)
cargo test --workspace --locked --no-run --quiet "${timings[@]}"
tests_ms=$(($(now_ms) - start))
if [ -n "$timings_out" ]; then
    cp "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing-*.html "$timings_out/tests.html"
fi

minutes() { printf '%d min %02d s' $(($1 / 60000)) $(($1 / 1000 % 60)); }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(a) cargo run -p cohort-sim -- demo, until the demo printed: $(minutes "$demo_ms")"
echo "(b) cargo test --workspace --no-run, added on top:           $(minutes "$tests_ms")"
