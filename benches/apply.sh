#!/usr/bin/env bash
# Benchmark: what share of first boot is cloudcfg's own time.
#
# 1. cloudcfg's own time for `apply` of the seed example (examples/seed-rfc.yaml): the whole
#    process against a throw-away overlay of the cached bookworm root in which apt-get,
#    debconf-set-selections and dpkg-reconfigure are stubs that exit 0. Keys come from a local
#    stand-in keyserver and Launchpad API (benches/fake-keyserver.py) on 127.0.0.1, so the
#    figure is cloudcfg's work: parsing, planning, key fetching and checking, atomic writes,
#    chroot set-up and tear-down, state and reports.
# 2. The same kind of config with real apt (a signed local repository, a debconf preseed with
#    tzdata reconfigured, a package installed): total run time and the time of the commands
#    apt and dpkg ran (from cloudcfg's log), so the rest is cloudcfg's share.
#
#   benches/apply.sh [RUNS]     (root; hyperfine; the cached root from tests/e2e/bookworm-root.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
[ "$(id -u)" = 0 ] || { echo "benches/apply.sh: needs root (overlay mounts, chroot)" >&2; exit 2; }
cache=${CLOUDCFG_E2E_CACHE:-/var/tmp/cloudcfg-e2e}
tests/e2e/bookworm-root.sh "$cache" >/dev/null
cargo build --release --quiet
bin=$PWD/target/release/cloudcfg
work=$(mktemp -d /var/tmp/cloudcfg-bench-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    grep -o " $work/root[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT

start_server() { # PORT_FILE WEB_ROOT KEY FINGERPRINT [PPA=...]
    rm -f "$1"
    python3 benches/fake-keyserver.py "$@" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
    echo "fake keyserver did not start" >&2; exit 1
}

# A fresh overlay on the cached root (what a first boot sees); STUBS=1 replaces apt's tools.
cat > "$work/reset.sh" <<EOF
#!/bin/sh
set -e
grep -o " $work/root[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount "\$m"; done
rm -rf "$work/upper" "$work/ovlwork" "$work/run"
mkdir -p "$work/upper" "$work/ovlwork" "$work/root" "$work/run"
chmod 0755 "$work/upper"
mount -t overlay overlay -o lowerdir=$cache/bookworm,upperdir=$work/upper,workdir=$work/ovlwork "$work/root"
: > "$work/root/etc/apt/sources.list"
if [ "\${STUBS:-0}" = 1 ]; then
    for tool in usr/bin/apt-get usr/bin/debconf-set-selections usr/sbin/dpkg-reconfigure; do
        printf '#!/bin/sh\nexit 0\n' > "$work/root/\$tool"
    done
fi
EOF
chmod +x "$work/reset.sh"

# --- 1. the seed example, apt stubbed --------------------------------------------------------
fpr=897FB1D86845F884F32374A8B54F83BA163D7715
start_server "$work/port1" "$work" tests/compat/keys/throwaway.asc "$fpr" PPA=example-team/example-ppa
port1=$(cat "$work/port1")
sed "s|keyserver: keyserver.ubuntu.com|keyserver: http://127.0.0.1:$port1|" examples/seed-rfc.yaml > "$work/seed.yaml"
printf 'keyserver: http://127.0.0.1:%s\nlaunchpad_api: http://127.0.0.1:%s\n' "$port1" "$port1" > "$work/sys1.yaml"
apply1="$bin --config $work/sys1.yaml apply --user-data $work/seed.yaml --root $work/root --instance-id i-bench --release bookworm"
STUBS=1 "$work/reset.sh"
CLOUDCFG_RUNTIME_DIR=$work/run $apply1 >/dev/null   # check it works before timing it
CLOUDCFG_RUNTIME_DIR=$work/run hyperfine --style none -N --runs "$runs" --prepare "env STUBS=1 $work/reset.sh" \
    --export-json "$work/seed.json" "$apply1" >/dev/null
seed_ms=$(python3 -c "import json; r=json.load(open('$work/seed.json'))['results'][0]; print('%.1f ± %.1f' % (r['mean']*1000, r['stddev']*1000))")
STUBS=1 "$work/reset.sh"
seed_rss=$( { CLOUDCFG_RUNTIME_DIR=$work/run /usr/bin/time -f %M $apply1 >/dev/null; } 2>&1 | tail -1)

# --- 2. real apt against a signed local repository --------------------------------------------
tests/e2e/make-repo.sh "$work/repo" >/dev/null
rfpr=$(cat "$work/repo/fingerprint")
start_server "$work/port2" "$work/repo/repo" "$work/repo/key.asc" "$rfpr"
port2=$(cat "$work/port2")
cat > "$work/real.yaml" <<EOF
#cloud-config
apt:
  sources:
    bench:
      source: "deb http://127.0.0.1:$port2/debian \$RELEASE main"
      keyid: "$rfpr"
      keyserver: "http://127.0.0.1:$port2"
apt_conf:
  - content: |
      APT::Install-Recommends "false";
debconf_selections: |
  tzdata tzdata/Areas select Europe
  tzdata tzdata/Zones/Europe select Berlin
packages: [cloudcfg-e2e-hello]
EOF
echo "run total_s commands_s cloudcfg_s" > "$work/real.txt"
for i in $(seq "$runs"); do
    "$work/reset.sh"
    start=$(date +%s.%N)
    CLOUDCFG_RUNTIME_DIR=$work/run "$bin" --config /nonexistent apply --user-data "$work/real.yaml" \
        --root "$work/root" --instance-id "i-real-$i" >/dev/null
    end=$(date +%s.%N)
    cmds=$(grep -o 'exit [0-9]* after [0-9.]* s' "$work/root/var/log/cloudcfg.log" | awk '{s += $4} END {print s}')
    python3 -c "t=$end-$start; c=$cmds; print($i, '%.3f' % t, '%.3f' % c, '%.3f' % (t - c))" >> "$work/real.txt"
done
summary=$(python3 - "$work/real.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
t = statistics.median(float(r[1]) for r in rows)
c = statistics.median(float(r[2]) for r in rows)
o = statistics.median(float(r[3]) for r in rows)
print(f"| real apt (local repository, debconf + tzdata reconfigure, one package) | {t:.2f} s | {c:.2f} s | {o:.3f} s ({100 * o / t:.1f} %) |")
EOF
)
{
    echo "| run (median of $runs) | total | apt/dpkg/debconf commands | cloudcfg's own time |"
    echo "|---|---|---|---|"
    echo "| seed-rfc.yaml, commands stubbed | $seed_ms ms | stubs | all of it (peak RSS $seed_rss KiB) |"
    echo "$summary"
} | tee target/bench-apply.md
