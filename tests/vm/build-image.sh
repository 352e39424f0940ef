#!/usr/bin/env bash
# Build (once per set of inputs) a bootable Debian bookworm disk image for the QEMU tests
# (tests/e2e_vm.rs) and the boot benchmark (benches/boot.sh), from the cached debootstrap root of
# tests/e2e/bookworm-root.sh. No loop mount, no boot loader: QEMU boots the root's kernel and
# initrd directly (-kernel/-initrd) with root=/dev/vda.
#
# usage: [CCVM_ROOT_KEY=FILE.pub] [CCVM_SUITE=trixie] tests/vm/build-image.sh CACHE_DIR VARIANT [CLOUDCFG]
#   CCVM_SUITE  the Debian release of the image: bookworm (the default) or trixie
#   VARIANT   cloudcfg    the root + cloudcfg (CLOUDCFG: a binary, or a cloudcfg_*.deb)
#             cloud-init  the root + Debian's cloud-init (+ gpg, which its apt key handling runs),
#                         `datasource_list: [ NoCloud, None ]`, `locale: false` (benchmark only)
#             bare        the root alone (benchmark baseline)
#   SSH: the root has openssh-server. cloudcfg and cloud-init: its host keys are removed (as
#   Debian's cloud image build shreds them; ssh.service's `sshd -t` then fails until a
#   first-boot tool has made new ones) and root has no authorized_keys. bare: the package's
#   host keys stay, and CCVM_ROOT_KEY (a public key file, optional; bare only) becomes root's
#   /root/.ssh/authorized_keys, so benches/time-to-ssh.sh can log in to a guest that no
#   first-boot tool configures.
#   Every variant gets: an empty /etc/apt/sources.list (guests only ever see the test's local
#   repository), ifupdown-wait-online.service enabled (network-online.target = eth0 has its
#   DHCP lease), the report unit (guest/cloudcfg-vm-report.service), which prints CCVM-*
#   markers and facts on the serial console once the boot is over and powers off, and an early
#   probe (guest/cloudcfg-vm-early.service) that records whether a boot-finished marker is
#   already there before any first-boot tool ran.
#
# Prints the image directory on stdout: DIR/base.img (raw ext4, 2 GiB sparse, label root),
# DIR/vmlinuz, DIR/initrd.img. Never write to base.img: boot a qcow2 overlay of it.
#
# The directory is CACHE_DIR/vm/VARIANT-KEY, KEY = hash of every input (this script, guest/*,
# the root's stamp, the cloudcfg binary or .deb); a second call with the same inputs prints it at
# once. Concurrent callers are serialised with flock. Older images of the variant beyond the
# newest three are removed.
#
# Needs (host): root, mount (overlayfs), chroot, mkfs.ext4 (e2fsprogs >= 1.43 for -d), flock,
# strip (binutils), sha256sum (units are enabled with the root's own systemctl, offline); for
# cloud-init also network access to the Debian mirror. Exit status: 0 ok, 1 failure, 2 usage.
set -euo pipefail
export LC_ALL=C.UTF-8

usage() {
    echo "usage: $0 CACHE_DIR cloudcfg|cloud-init|bare [CLOUDCFG_BINARY|cloudcfg_*.deb]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
VARIANT=$2
CLOUDCFG=${3:-}
ROOT_KEY=${CCVM_ROOT_KEY:-}
case $VARIANT in
cloudcfg) [ -n "$CLOUDCFG" ] && [ -f "$CLOUDCFG" ] || usage ;;
cloud-init | bare) [ -z "$CLOUDCFG" ] || usage ;;
*) usage ;;
esac
if [ -n "$ROOT_KEY" ]; then
    [ "$VARIANT" = bare ] || { echo "$0: CCVM_ROOT_KEY is for the bare variant only" >&2; exit 2; }
    [ -f "$ROOT_KEY" ] || { echo "$0: CCVM_ROOT_KEY=$ROOT_KEY: no such file" >&2; exit 2; }
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root (overlay mount, chroot)" >&2
    exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mkdir -p "$1/vm"
CACHE=$(cd "$1" && pwd)
IMAGE_SIZE=2G

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf 'build-image(%s): %s\n' "$VARIANT" "$*" >&2; }
T0=$(now)

# The root (cached; a no-op when it is up to date). Its output goes to stderr: stdout is ours.
SUITE=${CCVM_SUITE:-bookworm}
"$REPO/tests/e2e/bookworm-root.sh" "$CACHE" "$SUITE" >&2
ROOT=$CACHE/$SUITE

# The package's two units, which a bare-binary install puts in by hand: the init stage
# (Before=ssh.service; dh_installsystemd --name=cloudcfg-init installs it as
# cloudcfg-init.service) and the config and final stages.
UNIT=$REPO/debian/cloudcfg.service
INIT_UNIT=$REPO/debian/cloudcfg.cloudcfg-init.service

# --- the key: every input -----------------------------------------------------------------------
KEY=$(
    {
        echo "variant=$VARIANT size=$IMAGE_SIZE"
        sha256sum "$HERE/build-image.sh" "$HERE"/guest/* "$UNIT" "$INIT_UNIT" "$REPO/debian/cloudcfg.tmpfiles" "$REPO/debian/cloudcfg.yaml" | cut -d' ' -f1
        cat "$CACHE/$SUITE.done"
        # (bookworm's key stays what it was before images of other suites existed)
        [ "$SUITE" = bookworm ] || echo "suite=$SUITE"
        if [ -n "$CLOUDCFG" ]; then sha256sum <"$CLOUDCFG" | cut -d' ' -f1; fi
        if [ -n "$ROOT_KEY" ]; then echo "root-key=$(sha256sum <"$ROOT_KEY" | cut -d' ' -f1)"; fi
    } | sha256sum | cut -c1-16
)
OUT=$CACHE/vm/$VARIANT-$KEY

exec 9>"$CACHE/vm/$VARIANT.lock"
flock -w 1800 9 || { log "timed out waiting for $CACHE/vm/$VARIANT.lock"; exit 1; }
if [ -f "$OUT/done" ]; then
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

# --- a copy-on-write copy of the root -------------------------------------------------------------
WORK=$(mktemp -d "$CACHE/vm/.build-$VARIANT.XXXXXX")
R=$WORK/root
cleanup() {
    local m
    for m in $(awk -v p="$WORK/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/upper" "$WORK/work" "$R" "$WORK/out"
chmod 0755 "$WORK/upper" # the merged / takes the upper dir's mode
mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$WORK/upper,workdir=$WORK/work" "$R"

in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"; }

# --- cloudcfg: the one place that knows how cloudcfg gets into the image --------------------------
install_cloudcfg() {
    local input=$1
    case $input in
    *.deb)
        # The package: /usr/bin/cloudcfg, the unit (enabled by its postinst), the autosign
        # link, /etc/cloudcfg/cloudcfg.yaml.
        cp "$input" "$R/tmp/cloudcfg.deb"
        in_root dpkg -i /tmp/cloudcfg.deb >&2
        rm -f "$R/tmp/cloudcfg.deb"
        ;;
    *)
        # A bare binary (CLOUDCFG_VM_BIN, for quick iterations): what the package would install
        # that matters at boot, by hand.
        install -D -m 0755 "$input" "$R/usr/bin/cloudcfg"
        # Test binaries carry DWARF (160 MB for a debug build); the guest needs none of it.
        strip --strip-debug "$R/usr/bin/cloudcfg" 2>/dev/null || true
        mkdir -p "$R/usr/lib/cloudcfg"
        ln -sf ../../bin/cloudcfg "$R/usr/lib/cloudcfg/autosign"
        install -D -m 0644 "$UNIT" "$R/lib/systemd/system/cloudcfg.service"
        install -D -m 0644 "$INIT_UNIT" "$R/lib/systemd/system/cloudcfg-init.service"
        install -D -m 0644 "$REPO/debian/cloudcfg.tmpfiles" "$R/usr/lib/tmpfiles.d/cloudcfg.conf"
        install -D -m 0644 "$REPO/debian/cloudcfg.yaml" "$R/etc/cloudcfg/cloudcfg.yaml"
        in_root systemctl enable cloudcfg-init.service cloudcfg.service >&2
        ;;
    esac
    in_root cloudcfg --version >&2
}

install_cloud_init() {
    # The mirror is reached by the host (chroot), never by a guest.
    cp /etc/resolv.conf "$R/etc/resolv.conf"
    echo "deb http://deb.debian.org/debian $SUITE main" >"$R/etc/apt/sources.list"
    mkdir -p "$CACHE/debs/partial"
    mount --bind "$CACHE/debs" "$R/var/cache/apt/archives"
    mount -t proc proc "$R/proc"
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
    chmod 0755 "$R/usr/sbin/policy-rc.d"
    local attempt
    for attempt in 1 2 3; do
        if in_root apt-get update -o Acquire::Retries=3 >&2 &&
            DEBIAN_FRONTEND=noninteractive in_root apt-get install -y --no-install-recommends \
                -o Acquire::Retries=3 cloud-init gpg >&2; then
            break
        fi
        [ "$attempt" -lt 3 ] || { log "apt-get install cloud-init failed"; exit 1; }
        sleep $((attempt * 10))
    done
    rm -f "$R/usr/sbin/policy-rc.d"
    umount "$R/proc" "$R/var/cache/apt/archives"
    rm -rf "${R:?}"/var/lib/apt/lists/* "$R/var/log/apt"/* "$R/var/log/dpkg.log"
    mkdir -p "$R/var/lib/apt/lists/partial"
    : >"$R/etc/resolv.conf"
    cat >"$R/etc/cloud/cloud.cfg.d/90-cloudcfg-bench.cfg" <<'EOF'
# benches/boot.sh: NoCloud only (a cidata ISO), and no locale module (minbase has no
# generated locale: cc_locale fails and the boot is "degraded"; vm-notes Pitfall 7).
datasource_list: [ NoCloud, None ]
locale: false
EOF
    in_root cloud-init --version >&2
}

# SSH as a cloud image has it before its first boot: no host keys (Debian's image build
# shreds them; a first-boot tool makes the instance's own), nobody may log in as root.
first_boot_ssh() {
    rm -f "$R"/etc/ssh/ssh_host_*
    rm -f "$R/root/.ssh/authorized_keys" "$R/root/.ssh/authorized_keys2"
}
# The baseline: the package's host keys, and the benchmark's key for root.
bare_ssh() {
    [ -n "$(ls "$R"/etc/ssh/ssh_host_*_key 2>/dev/null)" ] || { log "the root has no SSH host keys"; exit 1; }
    if [ -n "$ROOT_KEY" ]; then
        install -d -m 0700 "$R/root/.ssh"
        install -m 0600 "$ROOT_KEY" "$R/root/.ssh/authorized_keys"
    fi
}

T_CUSTOM=$(now)
case $VARIANT in
cloudcfg) install_cloudcfg "$CLOUDCFG"; first_boot_ssh ;;
cloud-init) install_cloud_init; first_boot_ssh ;;
bare) bare_ssh ;;
esac

# --- every variant ----------------------------------------------------------------------------------
: >"$R/etc/apt/sources.list"
rm -f "$R"/etc/apt/sources.list.d/*
install -D -m 0755 "$HERE/guest/cloudcfg-vm-report" "$R/usr/local/sbin/cloudcfg-vm-report"
install -D -m 0644 "$HERE/guest/cloudcfg-vm-report.service" "$R/etc/systemd/system/cloudcfg-vm-report.service"
install -D -m 0644 "$HERE/guest/cloudcfg-vm-early.service" "$R/etc/systemd/system/cloudcfg-vm-early.service"
in_root systemctl enable cloudcfg-vm-report.service cloudcfg-vm-early.service \
    ifupdown-wait-online.service >&2
log "customised in $(elapsed "$T_CUSTOM") s"

# --- the image ------------------------------------------------------------------------------------
T_MKFS=$(now)
cp -L "$R/vmlinuz" "$WORK/out/vmlinuz"
cp -L "$R/initrd.img" "$WORK/out/initrd.img"
truncate -s "$IMAGE_SIZE" "$WORK/out/base.img"
mkfs.ext4 -q -F -L root -d "$R" "$WORK/out/base.img"
chmod 0444 "$WORK/out/base.img"
log "mkfs.ext4 -d took $(elapsed "$T_MKFS") s ($(du -sh "$WORK/out/base.img" | cut -f1) allocated)"

umount "$R"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
date -u +%FT%TZ >"$OUT/done"

# Keep the newest three images of this variant (other checkouts may still boot older ones).
ls -1dt "$CACHE/vm/$VARIANT"-* 2>/dev/null | tail -n +4 | while read -r old; do
    [ "$old" = "$OUT" ] || rm -rf --one-file-system "$old"
done
log "built $OUT in $(elapsed "$T0") s"
echo "$OUT"
