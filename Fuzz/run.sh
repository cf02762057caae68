#!/usr/bin/env bash
# libFuzzer over the library: builds every fuzz target with the fuzzer and address sanitizers,
# runs each for a set time from its seed corpus, prints executions and findings per target.
#
# usage: Fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET defaults to 60; TARGETs (framing, message, json, template, parsers, csv,
#   schema) default to all of them.
# Exits non-zero when any target crashed, timed out or ran out of memory; the input that did it
# is saved under Fuzz/crashes/ as <target>-crash-<sha1> (or -timeout-, -oom-, -leak-).
# Seeds are read from Fuzz/corpus/<target>/ and never written; the inputs a run discovers are
# kept in Fuzz/.build-fuzz/corpus/<target>/ and reused by the next run. FUZZ_SCRATCH overrides
# the scratch directory (default Fuzz/.build-fuzz).
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(framing message json template parsers csv schema)

scratch="${FUZZ_SCRATCH:-$fuzz_dir/.build-fuzz}"
crashes="$fuzz_dir/crashes"
mkdir -p "$crashes"

# -parse-as-library: a fuzz target has no top-level code; libFuzzer supplies main.
echo "Building the fuzz targets (release, -sanitize=fuzzer,address)..."
# Product by product: a plain `swift build` would also build the main package's `stagerunner`,
# whose own entry point cannot link with libFuzzer's. Only the targets asked for are built, and
# those without the engine build in a minute, not twenty.
for target in "${targets[@]}"; do
    swift build -c release --package-path "$fuzz_dir" --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product "fuzz-$target"
done
bin="$scratch/release"

status=0
rows=()
for target in "${targets[@]}"; do
    binary="$bin/fuzz-$target"
    work="$scratch/corpus/$target"
    log="$scratch/logs/$target.log"
    mkdir -p "$work" "$(dirname "$log")"
    before="$(ls "$crashes" | grep -c "^$target-" || true)"
    echo "fuzz-$target: ${seconds}s..."
    # Leak checking is off, per input and at exit: Foundation's NSRegularExpression leaks the
    # pattern buffer of every pattern over 256 UTF-16 units (crashes/schema-leak-long-pattern),
    # which is not ours to fix. A single input running over 25 s counts as a hang.
    set +e
    # Swift's own backtracer is off: libFuzzer and ASan print the stack, and the two together hang.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$binary" "$work" "$fuzz_dir/corpus/$target" \
        -max_total_time="$seconds" -max_len=65536 -timeout=25 -rss_limit_mb=4096 \
        -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$crashes/$target-" >"$log" 2>&1
    code=$?
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    [[ -z "$runs" ]] && runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)"
    [[ -z "$runs" ]] && runs="$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')"
    per_second="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
    units="$(ls "$work" | wc -l)"
    after="$(ls "$crashes" | grep -c "^$target-" || true)"
    found=$((after - before))
    if [[ $code -ne 0 || $found -gt 0 ]]; then
        status=1
        result="FAILED (exit $code; log: ${log#"$fuzz_dir"/})"
        [[ $found -eq 0 ]] && found=1
    else
        result="ok"
    fi
    rows+=("$(printf '%-10s %6s %12s %8s %6s %7s %8s  %s' "$target" "$seconds" "${runs:-?}" "${per_second:-?}" \
        "${coverage:-?}" "$units" "$found" "$result")")
done

echo
printf '%-10s %6s %12s %8s %6s %7s %8s  %s\n' target seconds executions exec/s cov corpus findings result
for row in "${rows[@]}"; do echo "$row"; done
if [[ $status -ne 0 ]]; then
    echo
    echo "Findings saved under ${crashes#"$PWD"/}/:"
    ls -1 "$crashes"
fi
exit $status
