#!/usr/bin/env bash
# Boot benchmark (issue 5, item 6; not run by CI): the same bookworm image and the same user data
# booted with cloudcfg, with Debian's cloud-init, and with neither, under QEMU, RUNS times each
# (default 5: TCG timings swing by half; only medians mean something). Measures the time from
# QEMU's start to "configuration done" (the CCVM-DONE serial line, printed once `systemctl
# is-system-running --wait` returns) and the in-guest cost (systemd-analyze, blame of each tool's
# units, apt's own time), and writes benches/boot-results.md.
#
# usage: sudo nice benches/boot.sh [RUNS]          (env: CLOUDCFG_E2E_CACHE, BENCH_OUT)
#
# Series (each boot: a fresh overlay of the image = a first boot; NoCloud seed on a cidata ISO):
#   bare              image without either tool (the ISO attached all the same)
#   cloudcfg-conf     cloudcfg (target/release/cloudcfg + debian/cloudcfg.service), user data: an
#                     apt conf snippet only (the tool's own cost: no command to run)
#   cloudcfg-nopkg    the same + a signed apt source with an inline key + debconf selections for a
#                     package that is not installed yet (so neither tool runs dpkg-reconfigure):
#                     the "config with no packages" of the issue's target
#   cloudcfg-pkg      the same + `packages: [cloudcfg-e2e-hello]` from that source (served on
#                     127.0.0.1, reached by the guest at 169.254.0.50:8080)
#   cloud-init-conf, cloud-init-nopkg, cloud-init-pkg   the same user data with Debian's cloud-init 22.4
#                     (`datasource_list: [ NoCloud, None ]`, `locale: false`)
# Two guests boot at a time (JOBS, default 2), one vCPU each, so that every boot shares the 2-core
# host with exactly one other guest; rounds interleave the series, so load drift spreads over all.
#
# Needs: root, everything tests/vm/build-image.sh needs (cloud-init's image needs the Debian mirror
# once), qemu-system-x86_64, qemu-img, genisoimage, python3. Takes about 7 series x RUNS x 1-1.5
# min / JOBS under TCG (5 runs: 20-30 min on an otherwise idle 2-core host).
set -euo pipefail
export LC_ALL=C.UTF-8
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${1:-5}
CACHE=${CLOUDCFG_E2E_CACHE:-/var/tmp/cloudcfg-e2e}
OUT=${BENCH_OUT:-$CACHE/bench-$(date +%Y%m%d-%H%M%S)}
JOBS=${JOBS:-2}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 2; }
mkdir -p "$OUT/logs"
log() { printf 'boot.sh: %s\n' "$*" >&2; }

# --- images ---------------------------------------------------------------------------------------
cargo build --release --quiet --bin cloudcfg
T=$(date +%s)
IMG_CLOUDCFG=$(tests/vm/build-image.sh "$CACHE" cloudcfg target/release/cloudcfg)
IMG_CLOUD_INIT=$(tests/vm/build-image.sh "$CACHE" cloud-init)
IMG_BARE=$(tests/vm/build-image.sh "$CACHE" bare)
log "images ready in $(($(date +%s) - T)) s"

# --- the repository, served on 127.0.0.1 ----------------------------------------------------------
tests/e2e/make-repo.sh "$OUT/repo" cloudcfg-e2e-hello 2>/dev/null
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$PY -m http.server "$PORT" --bind 127.0.0.1 --directory "$OUT/repo/repo" >"$OUT/http.log" 2>&1 &
HTTP_PID=$!
trap 'kill "$HTTP_PID" 2>/dev/null || true' EXIT

# --- user data and seeds --------------------------------------------------------------------------
conf='#cloud-config
apt:
  conf: |
    APT::Install-Recommends "false";'
nopkg="$conf"'
  debconf_selections:
    hello: |
      cloudcfg-e2e-hello cloudcfg-e2e-hello/greeting string bench
  sources:
    e2e:
      source: "deb [signed-by=$KEY_FILE] http://169.254.0.50:8080/debian $RELEASE main"
      key: |
'"$(sed 's/^/        /' "$OUT/repo/key.asc")"
seed() { # NAME USER_DATA
    local d=$OUT/seed-$1
    mkdir -p "$d"
    printf 'instance-id: iid-bench-1\nlocal-hostname: bench\n' >"$d/meta-data"
    printf '%s\n' "$2" >"$d/user-data"
    target/release/cloudcfg validate "$d/user-data" >&2
    genisoimage -quiet -volid cidata -joliet -rock -o "$OUT/$1.iso" "$d/user-data" "$d/meta-data"
}
seed conf "$conf"
seed nopkg "$nopkg"
seed pkg "$nopkg
packages: [cloudcfg-e2e-hello]"

# --- boots ----------------------------------------------------------------------------------------
series() { # SERIES -> "TOOL CONFIG IMAGE"
    case $1 in
    bare) echo "none conf $IMG_BARE" ;;
    cloudcfg-*) echo "cloudcfg ${1#cloudcfg-} $IMG_CLOUDCFG" ;;
    cloud-init-*) echo "cloud-init ${1#cloud-init-} $IMG_CLOUD_INIT" ;;
    esac
}
SERIES=(bare cloudcfg-conf cloud-init-conf cloudcfg-nopkg cloud-init-nopkg cloudcfg-pkg cloud-init-pkg)
RESULTS=$OUT/results.jsonl
T_ALL=$(date +%s)
boot() { # SERIES ROUND: one boot, its result as one JSON line in $OUT/results/
    local tool config image logf load r
    read -r tool config image <<<"$(series "$1")"
    logf=$OUT/logs/$1-$2.log
    load=$(cut -d' ' -f1 /proc/loadavg)
    r=$($PY benches/boot/bootvm.py "$image" "$logf" --cdrom "$OUT/$config.iso" --smp 1 \
        --fwd "169.254.0.50:8080=$PORT" --append ccvm.bench --timeout 900 || true)
    [ -n "$r" ] || r='{"marker": null, "end": null, "exit": null, "rc": null}'
    $PY -c 'import json, sys; r = json.loads(sys.argv[1]); r.update(series=sys.argv[2], tool=sys.argv[3], config=sys.argv[4], round=int(sys.argv[5]), log=sys.argv[6], load=float(sys.argv[7])); print(json.dumps(r))' \
        "$r" "$1" "$tool" "$config" "$2" "$logf" "$load" >"$OUT/results/$(printf '%02d' "$2")-$1.json"
    log "round $2 $1: $r (load $load)"
}
mkdir -p "$OUT/results"
# Only the boots are waited for: the HTTP server is a background job too.
boots=()
for round in $(seq 1 "$RUNS"); do
    for s in "${SERIES[@]}"; do
        if [ "${#boots[@]}" -ge "$JOBS" ]; then
            wait -n "${boots[@]}" || true
            alive=()
            for pid in "${boots[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
            boots=("${alive[@]}")
        fi
        boot "$s" "$round" &
        boots+=($!)
    done
done
wait "${boots[@]}"
for round in $(seq 1 "$RUNS"); do
    for s in "${SERIES[@]}"; do cat "$OUT/results/$(printf '%02d' "$round")-$s.json"; done
done >"$RESULTS"
log "all boots in $(($(date +%s) - T_ALL)) s; results: $RESULTS"

# --- report ---------------------------------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
ACCEL=$($PY -c 'import sys; sys.path.insert(0, "benches/boot"); import bootvm; print(" ".join(bootvm.accel()))')
HEADER="# Boot benchmark: cloudcfg vs cloud-init vs neither

Generated by \`benches/boot.sh $RUNS\` on $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) vCPU ($CPU), $(free -g | awk '/^Mem:/ { print $2 }') GiB, kernel $(uname -r),
$(qemu-system-x86_64 --version | head -1); QEMU options: $ACCEL -smp 1 -m 1024, $JOBS guests at a time; guest: Debian bookworm
$(cat "$CACHE/bookworm/etc/debian_version"), kernel $(basename "$(readlink "$CACHE/bookworm/vmlinuz")"),
cloudcfg $(target/release/cloudcfg --version | cut -d' ' -f2) (release build), $(grep -h -m1 -o 'Cloud-init v\. [0-9][0-9.a-z+~-]*' "$OUT"/logs/cloud-init-nopkg-1.log 2>/dev/null | head -1 || true).
Under TCG every figure is many times what KVM would give, and boots swing: compare series by
their medians only. Raw data: $RESULTS.
"
$PY benches/boot/summarize.py "$RESULTS" --header "$HEADER" >benches/boot-results.md
log "wrote benches/boot-results.md"
cat benches/boot-results.md
