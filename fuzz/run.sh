#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, one after the
# other on one core, with corpora seeded from the test suite (and
# TARGET.dict as libFuzzer's dictionary when there is one).
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (installed from crates.io when
# missing). Crashes land in fuzz/artifacts/TARGET/; replay one with
# `cargo +nightly fuzz run --sanitizer none TARGET FILE`. A summary line per
# target (executions, seconds, crash or not) is printed at the end.
set -euo pipefail

secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(startup frames messages copy sql policy shape)
fi
# A grant-token target joins these once grant tokens exist (issue 15).

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
python3 seed.py corpus >/dev/null

summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    dict=()
    if [ -f "$t.dict" ]; then
        dict=(-dict="$t.dict")
    fi
    set +e
    cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1 || true)
    if [ "$rc" -eq 0 ]; then
        verdict=ok
    else
        verdict="CRASH (see $log; inputs in artifacts/$t/)"
        status=1
    fi
    summary+=("$t: ${runs:-?} executions in ${took:-less than $secs} s, corpus $(ls "corpus/$t" | wc -l) inputs, $verdict")
done
printf '%s\n' "${summary[@]}"
exit $status
