#!/usr/bin/env bash
# The slowest inputs of a target's corpus, replayed once each without AddressSanitizer:
#   fuzz/slowest.sh decode|validate|plan [N]
# The campaigns run under ASan, whose allocator and coverage hooks make this allocation-heavy
# code 15-20 times slower (an input of 8,000 unknown keys: 576 ms under ASan, 30 ms natively),
# so their -timeout only catches hangs. The requirement, 100 ms for any input up to 64 KiB, is
# checked here instead: the build keeps libFuzzer's coverage instrumentation, so the times are
# an upper bound of a release build's. Prints the N slowest (default 5), slowest first.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/slowest.sh decode|validate|plan [N]}
top=${2:-5}
nice -n 19 cargo +nightly fuzz build -O -s none --target-dir target/nosan "$target" >&2
bin=$PWD/target/nosan/x86_64-unknown-linux-gnu/release/$target
find "corpus/$target" -type f -size -65537c -print0 |
    xargs -0 -n 200 "$bin" 2>&1 |
    sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p' |
    sort -rn | head -n "$top"
