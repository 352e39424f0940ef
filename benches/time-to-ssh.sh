#!/usr/bin/env bash
# Time to SSH (issue 14, "Must show"; not run by CI): how long after QEMU starts the first ssh
# login succeeds, for the same bookworm image (tests/vm/build-image.sh, with openssh-server)
# booted three ways, RUNS times each (default 5; every boot is a first boot: a fresh qcow2
# overlay, a new instance):
#   bare        no first-boot tool: the root's own host keys, the benchmark's key baked into
#               /root/.ssh/authorized_keys (CCVM_ROOT_KEY); logs in as root (the floor)
#   cloudcfg    the image's host keys removed, no user but root; cloudcfg (target/release/cloudcfg
#               with both units: cloudcfg-init.service before ssh.service, cloudcfg.service);
#               logs in as the default user `debian` with the key from the seed
#   cloud-init  the same, with Debian's cloud-init 22.4 instead (`datasource_list: [ NoCloud,
#               None ]`, `locale: false`)
# All three get the same NoCloud seed (a cidata ISO; bare ignores it): meta-data with the
# benchmark's public key (`public-keys`), user data `hostname`, `fqdn`, `manage_etc_hosts: true`.
# The guest network is QEMU's user network with `restrict=on` and one hostfwd,
# 127.0.0.1:PORT -> guest port 22: the guest reaches nothing.
#
# Measured: `ssh` = host seconds from just before QEMU is started to the end of the first `ssh
# USER@127.0.0.1 true` that succeeds (polled: ConnectTimeout=3, 0.2 s between attempts). Then,
# through that login, the guest's own view: `sshd` = guest monotonic seconds at which ssh.service
# became active; `before sshd` = time spent in the first-boot units ordered before sshd
# (cloudcfg-init.service; cloud-init-local.service + cloud-init.service). After the login the
# boot is left to finish (the report unit, tests/vm/guest/cloudcfg-vm-report with ccvm.hold,
# prints its state), then QEMU is killed. Boots run one at a time (the ssh client's polling and
# a second guest would share the 2 cores otherwise), series interleaved round by round.
#
# usage: sudo benches/time-to-ssh.sh [RUNS]
#   env: CLOUDCFG_E2E_CACHE (default /var/tmp/cloudcfg-e2e), BENCH_OUT (default
#   $CACHE/time-to-ssh-DATE), SMP (vCPUs per guest, default 2), RESULTS_MD (default
#   benches/time-to-ssh-results.md; `-` = stdout only), CLOUDCFG (the binary or .deb to put in
#   the cloudcfg image; default: `cargo build --release`'s target/release/cloudcfg),
#   SERIES (default "bare cloudcfg cloud-init")
# Needs: root, what tests/vm/build-image.sh needs (the cloud-init image needs the Debian mirror
# once), qemu-system-x86_64, qemu-img, genisoimage, ssh, ssh-keygen, python3. Under TCG on a
# 2-core host: about 1-2 minutes per boot, 15-25 minutes for 5 runs.
set -euo pipefail
export LC_ALL=C.UTF-8
cd "$(dirname "$0")/.."
RUNS=${1:-5}
CACHE=${CLOUDCFG_E2E_CACHE:-/var/tmp/cloudcfg-e2e}
OUT=${BENCH_OUT:-$CACHE/time-to-ssh-$(date +%Y%m%d-%H%M%S)}
SMP=${SMP:-2}
RESULTS_MD=${RESULTS_MD:-benches/time-to-ssh-results.md}
read -r -a SERIES <<<"${SERIES:-bare cloudcfg cloud-init}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 2; }
case $RUNS in '' | *[!0-9]* | 0) echo "usage: $0 [RUNS]" >&2; exit 2 ;; esac
mkdir -p "$OUT/logs" "$OUT/results"
log() { printf 'time-to-ssh: %s\n' "$*" >&2; }
now() { date +%s.%N; }

# --- the key (kept in the cache, so the bare image, which bakes it in, is reused) -------------------
KEYDIR=$CACHE/vm/time-to-ssh-key
if [ ! -f "$KEYDIR/id_ed25519" ]; then
    mkdir -p "$KEYDIR"
    ssh-keygen -q -t ed25519 -N '' -C cloudcfg-time-to-ssh -f "$KEYDIR/id_ed25519"
fi
KEY=$KEYDIR/id_ed25519
PUB=$(cat "$KEY.pub")

# --- images ---------------------------------------------------------------------------------------
if [ -z "${CLOUDCFG:-}" ]; then
    cargo build --release --quiet --bin cloudcfg
    CLOUDCFG=target/release/cloudcfg
fi
T=$(now)
declare -A IMAGE
for s in "${SERIES[@]}"; do
    case $s in
    bare) IMAGE[$s]=$(CCVM_ROOT_KEY=$KEY.pub tests/vm/build-image.sh "$CACHE" bare) ;;
    cloudcfg) IMAGE[$s]=$(tests/vm/build-image.sh "$CACHE" cloudcfg "$CLOUDCFG") ;;
    cloud-init) IMAGE[$s]=$(tests/vm/build-image.sh "$CACHE" cloud-init) ;;
    *) echo "$0: unknown series $s" >&2; exit 2 ;;
    esac
done
log "images ready in $(awk -v a="$T" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"

# --- the seed -------------------------------------------------------------------------------------
mkdir -p "$OUT/seed"
printf 'instance-id: iid-time-to-ssh\nlocal-hostname: bench\npublic-keys:\n  - "%s"\n' "$PUB" \
    >"$OUT/seed/meta-data"
printf '#cloud-config\nhostname: web-1\nfqdn: web-1.example.test\nmanage_etc_hosts: true\n' \
    >"$OUT/seed/user-data"
if [ -x "$CLOUDCFG" ] && [ "${CLOUDCFG%.deb}" = "$CLOUDCFG" ]; then
    "$CLOUDCFG" validate "$OUT/seed/user-data" >&2
fi
genisoimage -quiet -volid cidata -joliet -rock -o "$OUT/seed.iso" "$OUT/seed/user-data" \
    "$OUT/seed/meta-data"

if [ -d /sys/module/kvm_pvm ] || ! grep -qE 'vmx|svm' /proc/cpuinfo || ! [ -w /dev/kvm ]; then
    ACCEL=(-machine pc,accel=tcg -cpu max)
else
    ACCEL=(-machine pc,accel=kvm -cpu host)
fi
SSH_OPTS=(-F /dev/null -i "$KEY" -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null
    -o ConnectTimeout=3 -o LogLevel=ERROR -T)

QEMU_PID=
cleanup() { [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true; }
trap cleanup EXIT

# boot SERIES ROUND: one first boot; its result as one JSON line in $OUT/results/.
boot() {
    local s=$1 round=$2 user=debian dir logf port t0 t_ssh='' attempts=0 i guest='' state=''
    [ "$s" = bare ] && user=root
    dir=$(mktemp -d /var/tmp/time-to-ssh-XXXXXX)
    logf=$OUT/logs/$s-$round.log
    qemu-img create -q -f qcow2 -b "${IMAGE[$s]}/base.img" -F raw "$dir/overlay.qcow2"
    port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(now)
    qemu-system-x86_64 "${ACCEL[@]}" -smp "$SMP" -m 1024 -display none -monitor none \
        -serial "file:$logf" -no-reboot \
        -kernel "${IMAGE[$s]}/vmlinuz" -initrd "${IMAGE[$s]}/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 ccvm.hold" \
        -drive "file=$dir/overlay.qcow2,if=virtio,format=qcow2" \
        -drive "file=$OUT/seed.iso,media=cdrom,readonly=on" \
        -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.1,hostfwd=tcp:127.0.0.1:$port-:22" \
        -device virtio-net-pci,netdev=n0 </dev/null 2>"$dir/qemu.err" &
    QEMU_PID=$!
    # Poll until the first login (or 600 s, or QEMU's end).
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        attempts=$((attempts + 1))
        if timeout 15 ssh "${SSH_OPTS[@]}" -p "$port" "$user@127.0.0.1" true </dev/null \
            >/dev/null 2>"$dir/ssh.err"; then
            t_ssh=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
            break
        fi
        if awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }'; then break; fi
        sleep 0.2
    done
    if [ -n "$t_ssh" ]; then
        # The guest's view, through the login: when sshd became active, and the time the
        # first-boot units before it took (monotonic microseconds).
        guest=$(timeout 60 ssh "${SSH_OPTS[@]}" -p "$port" "$user@127.0.0.1" '
            # The default user asks through sudo: without D-Bus in the image, only root
            # reaches systemd (its private socket).
            S=; [ "$(id -u)" = 0 ] || S="sudo -n"
            p() { $S systemctl show -p "$2" --value "$1" 2>/dev/null; }
            echo "sshd $(p ssh.service ActiveEnterTimestampMonotonic)"
            for u in cloudcfg-init.service cloud-init-local.service cloud-init.service; do
                a=$(p $u InactiveExitTimestampMonotonic); b=$(p $u ActiveEnterTimestampMonotonic)
                [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] && echo "unit $u $((b - a))"
            done
            echo "host-keys $(ls /etc/ssh/ssh_host_*_key.pub 2>/dev/null | wc -l)"
            echo "hostname $(hostname)"' </dev/null 2>>"$dir/ssh.err" | tr '\n' ';' || true)
        # Let the boot finish (the report), for its state; it does not count.
        for i in $(seq 1 600); do
            grep -q 'CCVM-HOLD' "$logf" 2>/dev/null && break
            kill -0 "$QEMU_PID" 2>/dev/null || break
            sleep 0.5
        done
        state=$(grep -a -o 'CCVM-DONE .*' "$logf" | head -1 | tr -d '\r' || true)
    fi
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
    $PY - "$s" "$round" "$t_ssh" "$attempts" "$guest" "$state" "$logf" "$load" "$(tail -c 300 "$dir/ssh.err" | tr '\n' ' ')" \
        >"$OUT/results/$(printf '%02d' "$round")-$s.json" <<'PY'
import json, sys
s, rnd, t_ssh, attempts, guest, state, logf, load, err = sys.argv[1:]
r = {"series": s, "round": int(rnd), "ssh": float(t_ssh) if t_ssh else None,
     "attempts": int(attempts), "log": logf, "load": float(load), "state": state}
units = {}
for item in guest.split(";"):
    f = item.split()
    if len(f) >= 2 and f[0] == "sshd" and f[1].isdigit():
        r["sshd"] = int(f[1]) / 1e6
    elif len(f) == 3 and f[0] == "unit":
        units[f[1]] = int(f[2]) / 1e6
    elif len(f) == 2 and f[0] in ("host-keys", "hostname"):
        r[f[0]] = f[1]
r["before_sshd"] = round(sum(units.values()), 3) if units else None
r["units"] = units
if not t_ssh:
    r["ssh_error"] = err
print(json.dumps(r))
PY
    rm -rf "$dir"
    log "round $round $s: $(cat "$OUT/results/$(printf '%02d' "$round")-$s.json")"
}

T_ALL=$(now)
for round in $(seq 1 "$RUNS"); do
    for s in "${SERIES[@]}"; do
        boot "$s" "$round"
    done
done
cat "$OUT"/results/*.json >"$OUT/results.jsonl"
log "all boots in $(awk -v a="$T_ALL" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s; raw: $OUT/results.jsonl"

# --- report ---------------------------------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
CLOUD_INIT_V=$(grep -a -h -m1 -o 'Cloud-init v\. [0-9][0-9.a-z+~-]*' "$OUT"/logs/cloud-init-*.log 2>/dev/null | head -1 || true)
CLOUDCFG_V=$( ( [ "${CLOUDCFG%.deb}" = "$CLOUDCFG" ] && "$CLOUDCFG" --version ) 2>/dev/null || basename "$CLOUDCFG")
HEADER="# Time to SSH: cloudcfg vs cloud-init vs a bare boot

Generated by \`sudo benches/time-to-ssh.sh $RUNS\` on $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) vCPU ($CPU), $(free -g | awk '/^Mem:/ { print $2 }') GiB, kernel $(uname -r),
$(qemu-system-x86_64 --version | head -1); QEMU: ${ACCEL[*]} -smp $SMP -m 1024, one guest at a time.
Guest: Debian bookworm $(cat "$CACHE/bookworm/etc/debian_version"), kernel $(basename "$(readlink "$CACHE/bookworm/vmlinuz")"),
openssh-server $(dpkg-query --admindir="$CACHE/bookworm/var/lib/dpkg" -W -f='${Version}' openssh-server 2>/dev/null || echo '?');
$CLOUDCFG_V ($CLOUDCFG); $CLOUD_INIT_V.
Raw data: $OUT/results.jsonl (serial logs beside it)."
$PY - "$OUT/results.jsonl" "$HEADER" "$RUNS" >"$OUT/results.md" <<'PY'
import json, statistics, sys
path, header, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(path)]
order = [s for s in ("bare", "cloudcfg", "cloud-init") if any(r["series"] == s for r in rows)]
def vals(s, k):
    return [r[k] for r in rows if r["series"] == s and r.get(k) is not None]
def fmt(v):
    return "-" if v is None else f"{v:.1f}"
def stat(s, k):
    v = vals(s, k)
    if not v:
        return None, None, None, 0
    return statistics.median(v), min(v), max(v), len(v)
print(header)
print()
print("## Time to SSH")
print()
print(f"{len(rows)} first boots. Seconds; median (min-max) over n boots. `ssh` = host wall time from "
      "QEMU's start to the end of the first successful `ssh USER@ true` (bare: root with the baked "
      "key; cloudcfg and cloud-init: `debian`, the default user, with the seed's key); `sshd` = "
      "guest monotonic time at which ssh.service became active; `before sshd` = the first-boot "
      "units ordered before sshd (cloudcfg-init.service; cloud-init-local.service + "
      "cloud-init.service), start to active; `boot state` = `systemctl is-system-running` once "
      "the boot was over (after the login).")
print()
print("| series | n | ssh | sshd | before sshd | attempts | host keys | boot state |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for s in order:
    m, lo, hi, n = stat(s, "ssh")
    med[s] = m
    cells = [s, str(n), "-" if m is None else f"{m:.1f} ({lo:.1f}-{hi:.1f})"]
    for k in ("sshd", "before_sshd"):
        km, klo, khi, kn = stat(s, k)
        cells.append("-" if km is None else f"{km:.1f} ({klo:.1f}-{khi:.1f})")
    a = vals(s, "attempts")
    cells.append(str(int(statistics.median(a))) if a else "-")
    hk = sorted({str(r.get("host-keys", "-")) for r in rows if r["series"] == s})
    cells.append(",".join(hk))
    states = sorted({(r.get("state") or "no report").split("state=")[-1] for r in rows if r["series"] == s})
    cells.append(",".join(states))
    failed = [r for r in rows if r["series"] == s and r.get("ssh") is None]
    if failed:
        cells[1] += f" ({len(failed)} without login)"
    print("| " + " | ".join(cells) + " |")
print()
if "bare" in med and med["bare"] is not None:
    print("## Overhead over the bare boot")
    print()
    print("Median of the series minus the median of bare (`ssh`), and the same for the guest's "
          "`sshd` time; the ratio is cloudcfg's overhead as a share of cloud-init's "
          "(target: under 10 %).")
    print()
    print("| series | ssh overhead | sshd overhead |")
    print("|---|---|---|")
    over = {}
    sover = {}
    bs = stat("bare", "sshd")[0]
    for s in order:
        if s == "bare" or med.get(s) is None:
            continue
        over[s] = med[s] - med["bare"]
        ss = stat(s, "sshd")[0]
        sover[s] = None if ss is None or bs is None else ss - bs
        print(f"| {s} | {fmt(over[s])} | {fmt(sover[s])} |")
    print()
    if "cloudcfg" in over and "cloud-init" in over and over["cloud-init"] > 0:
        ratio = over["cloudcfg"] / over["cloud-init"]
        line = f"cloudcfg / cloud-init overhead (ssh): {ratio * 100:.1f} %"
        if sover.get("cloudcfg") is not None and sover.get("cloud-init"):
            line += f"; by the guest's sshd time: {sover['cloudcfg'] / sover['cloud-init'] * 100:.1f} %"
        print(line + ("  (target < 10 %: met)" if ratio < 0.1 else "  (target < 10 %: NOT met)"))
        print()
print("## Boots")
print()
print("| round | series | ssh | attempts | sshd | before sshd | load | log |")
print("|---|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["round"], order.index(r["series"]))):
    print(f"| {r['round']} | {r['series']} | {fmt(r.get('ssh'))} | {r['attempts']} | "
          f"{fmt(r.get('sshd'))} | {fmt(r.get('before_sshd'))} | {r['load']:.2f} | "
          f"{r['log'].rsplit('/', 1)[-1]} |")
PY
if [ "$RESULTS_MD" != - ]; then
    cp "$OUT/results.md" "$RESULTS_MD"
    log "wrote $RESULTS_MD"
fi
cat "$OUT/results.md"
