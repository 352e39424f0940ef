#!/usr/bin/env bash
# One fuzz campaign: ./fuzz/campaign.sh TARGET [SECONDS] [extra libFuzzer flags...]
# TARGET is decode, validate or plan. Builds the target (nightly, AddressSanitizer), seeds
# its corpus, then runs libFuzzer at the lowest priority (FUZZ_NICE, default 19) with one job,
# the dictionary, inputs up to 64 KiB and a 2 s timeout per input (a hang detector: the
# 100 ms requirement is checked natively by fuzz/slowest.sh). The log and the final
# figures (executions per second, cov, ft, corpus, runs, slowest unit) go to fuzz/logs/.
# Crashes, timeouts and out-of-memory inputs land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"

target=${1:?usage: fuzz/campaign.sh decode|validate|plan [SECONDS] [libFuzzer flags...]}
seconds=${2:-600}
# libFuzzer's -timeout is wall-clock time: on a machine busy with other work a nice-19 fuzzer
# gets almost no CPU, and inputs that take 60 ms time out. Use FUZZ_NICE=0 there.
nice=${FUZZ_NICE:-19}
shift $(( $# >= 2 ? 2 : 1 ))

nice -n 19 cargo +nightly fuzz build -O "$target"
# Allocation stack traces cost most of AddressSanitizer's time on this allocation-heavy
# code and only serve use-after-free reports (safe Rust); without them the timeout
# measures cloudcfg, not the sanitizer. Set ASAN_OPTIONS to override.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
# As cloudcfg's main does: no backtraces captured in library errors (see slowest.sh).
export RUST_LIB_BACKTRACE=0
./seed-corpus.sh
bin=$PWD/target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "corpus/$target" "artifacts/$target" logs
stamp=$(date -u +%Y%m%dT%H%M%SZ)
run=logs/$target-$stamp
mkdir -p "$run"
# -jobs=1 runs the fuzzer as one child whose output goes to fuzz-0.log in the working
# directory: run it in the log directory.
(
    cd "$run"
    nice -n "$nice" "$bin" "$OLDPWD/corpus/$target" \
        -dict="$OLDPWD/cloud-config.dict" \
        -max_len=65536 -timeout=2 -rss_limit_mb=2048 \
        -jobs=1 -workers=1 -max_total_time="$seconds" \
        -artifact_prefix="$OLDPWD/artifacts/$target/" \
        -print_final_stats=1 "$@" > libfuzzer.log 2>&1 || true
)
log=$run/fuzz-0.log
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
{
    echo "target: $target, $seconds s, started $stamp"
    echo "last status: $last"
    grep -E '^stat::|^Done|SUMMARY|ERROR' "$log" || true
    echo "corpus files: $(find "corpus/$target" -type f | wc -l)"
    echo "artifacts: $(find "artifacts/$target" -type f | wc -l)"
} | tee "$run/summary.txt"
