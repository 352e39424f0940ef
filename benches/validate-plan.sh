#!/usr/bin/env bash
# Benchmark: `cloudcfg validate` and `cloudcfg plan` as whole processes, side by side with
# `cloud-init schema --config-file` (Debian's cloud-init 22.4) on the same files and machine.
# Reports ratios, peak RSS, growth with input size, and the alias-bomb time. Never run by the
# tests: timings are measured here, asserted nowhere.
#
#   benches/validate-plan.sh [OUTDIR]      (needs hyperfine, /usr/bin/time, cloud-init)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench}
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/cloudcfg
facts=(--instance-id i-0abc --hostname web1 --fqdn web1.example.org --release bookworm --config /nonexistent)

# Large inputs: N sources and 10*N packages.
make_large() {
    local n=$1 file=$2
    {
        echo "#cloud-config"
        echo "apt_sources:"
        for i in $(seq 1 "$n"); do
            echo "  - source: \"deb http://m$i.example.org/debian bookworm main\""
            echo "    filename: src-$i"
        done
        echo "packages:"
        for i in $(seq 1 $((n * 10))); do echo "  - package-$i"; done
    } > "$file"
}
make_large 250 "$out/large-250.yaml"
make_large 500 "$out/large-500.yaml"
make_large 1000 "$out/large.yaml"
make_large 2000 "$out/large-2000.yaml"
cp examples/seed-rfc.yaml "$out/seed.yaml"
{
    echo "#cloud-config"
    echo "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"
    for i in $(seq 1 9); do
        printf 'a%d: &a%d [' "$i" "$i"
        for j in $(seq 1 9); do printf '*a%d%s' $((i - 1)) "$([ "$j" -lt 9 ] && echo ', ')"; done
        echo "]"
    done
} > "$out/laughs.yaml"

hf() { hyperfine --style none --warmup 3 --min-runs "${RUNS:-20}" -N --ignore-failure --export-json "$1" "${@:2}" >/dev/null; }
mean_ms() { python3 -c "import json,sys; print('%.2f' % (json.load(open(sys.argv[1]))['results'][${2:-0}]['mean']*1000))" "$1"; }
rss_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

for input in seed large; do
    f="$out/$input.yaml"
    hf "$out/$input.json" \
        "$bin validate $f" \
        "$bin plan --user-data $f ${facts[*]}" \
        "cloud-init schema --config-file $f"
done
hf "$out/growth.json" \
    "$bin validate $out/large-250.yaml" "$bin validate $out/large-500.yaml" \
    "$bin validate $out/large.yaml" "$bin validate $out/large-2000.yaml"
RUNS=10 hf "$out/laughs.json" "$bin validate $out/laughs.yaml"

seed_v=$(mean_ms "$out/seed.json" 0); seed_p=$(mean_ms "$out/seed.json" 1); seed_c=$(mean_ms "$out/seed.json" 2)
large_v=$(mean_ms "$out/large.json" 0); large_p=$(mean_ms "$out/large.json" 1); large_c=$(mean_ms "$out/large.json" 2)
ratio() { python3 -c "print('%.0f' % ($1 / $2))"; }
{
    echo "| input | cloudcfg validate | cloudcfg plan | cloud-init schema | ratio validate | ratio plan |"
    echo "|---|---|---|---|---|---|"
    echo "| seed-rfc.yaml | $seed_v ms | $seed_p ms | $seed_c ms | $(ratio "$seed_c" "$seed_v")x | $(ratio "$seed_c" "$seed_p")x |"
    echo "| 1,000 sources + 10,000 packages | $large_v ms | $large_p ms | $large_c ms | $(ratio "$large_c" "$large_v")x | $(ratio "$large_c" "$large_p")x |"
    echo
    echo "Peak RSS (KiB): validate seed $(rss_kb "$bin" validate "$out/seed.yaml"), plan seed $(rss_kb "$bin" plan --user-data "$out/seed.yaml" "${facts[@]}"), validate large $(rss_kb "$bin" validate "$out/large.yaml"), cloud-init schema seed $(rss_kb cloud-init schema --config-file "$out/seed.yaml")"
    echo
    echo "Growth (validate, ms): 250/2,500: $(mean_ms "$out/growth.json" 0), 500/5,000: $(mean_ms "$out/growth.json" 1), 1,000/10,000: $(mean_ms "$out/growth.json" 2), 2,000/20,000: $(mean_ms "$out/growth.json" 3)"
    echo
    echo "Billion laughs (refused at the node budget): $(mean_ms "$out/laughs.json") ms"
} | tee "$out/summary.md"
