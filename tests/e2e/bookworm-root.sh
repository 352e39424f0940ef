#!/usr/bin/env bash
# Build (once) the cached Debian bookworm root that every end-to-end test of cloudcfg uses: the
# chroot apply tests mount it read-only as the lower layer of an overlayfs, and the QEMU tests turn a
# copy of it into a bootable ext4 image (see ../shared/spec/vm-notes.md, "Step 1"). With SUITE
# trixie it builds the Debian 13 root of the trixie tests instead (tests/e2e_trixie.rs), shaped
# as trixie's cloud images are: apt's sources in deb822 (/etc/apt/sources.list.d/debian.sources),
# no /etc/apt/sources.list.
#
# usage: tests/e2e/bookworm-root.sh CACHE_DIR [SUITE]   (SUITE: bookworm, the default, or trixie)
#
# Result: CACHE_DIR/SUITE (the root) and CACHE_DIR/SUITE.done (stamp = hash of the recipe below).
# A second call with the same recipe does nothing. Concurrent callers are serialised with flock on
# CACHE_DIR/bookworm.lock. Debootstrap is retried 3 times with back-off; a failed partial root is
# removed first. Downloaded .debs are kept in CACHE_DIR/debs, so a retry or a rebuild after a recipe
# change does not download them again.
#
# The root is first-boot shaped, like a Debian cloud image before its first boot:
#   - no /var/lib/apt/lists/* (the first `apt-get update` is a cold one) and an empty apt cache;
#   - empty /etc/machine-id (so cloudcfg needs --instance-id against it);
#   - /etc/hostname = cloudcfg-e2e, /etc/hosts, /etc/apt/sources.list = the main suite only;
#   - VM bits: /etc/network/interfaces (eth0 dhcp; boot with net.ifnames=0), /etc/fstab (/dev/vda),
#     root without password (serial console debugging of throw-away test VMs).
# No puppet, no cloud-init.
#
# Needs (host): root, debootstrap, flock (util-linux), coreutils, network access to the mirror.
# Exit status: 0 ok, 1 failure, 2 usage.
set -euo pipefail
export LC_ALL=C.UTF-8

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
    echo "usage: $0 CACHE_DIR [bookworm|trixie]" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root (debootstrap, chroot)" >&2
    exit 2
fi

SUITE=${2:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VARIANT=minbase
# sudo: visudo checks the users module's sudoers drop-in (tests/e2e_user_data.rs, the VM image).
# openssh-server: the VM tests log in (tests/e2e_vm.rs, benches/time-to-ssh.sh); its postinst
# makes host keys, which tests/vm/build-image.sh removes again for the first-boot variants.
INCLUDE=systemd-sysv,udev,linux-image-amd64,ifupdown,isc-dhcp-client,iproute2,ca-certificates,kmod,ncurses-base,sudo,openssh-server
case $SUITE in
bookworm | trixie) ;;
*) echo "$0: unknown suite $SUITE (bookworm or trixie)" >&2; exit 2 ;;
esac
HOSTNAME_=cloudcfg-e2e
# Bump when the post-debootstrap steps below change: it is part of the stamp.
RECIPE_VERSION=1

mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
ROOT=$CACHE/$SUITE
PARTIAL=$CACHE/$SUITE.partial
STAMP=$CACHE/$SUITE.done
LOCK=$CACHE/$SUITE.lock
DEBS=$CACHE/debs

RECIPE="recipe=$RECIPE_VERSION suite=$SUITE variant=$VARIANT mirror=$MIRROR include=$INCLUDE arch=$(dpkg --print-architecture) hostname=$HOSTNAME_"
[ "$SUITE" = bookworm ] || RECIPE="$RECIPE sources=deb822-mirror-lists-1"
HASH=$(printf '%s\n' "$RECIPE" | sha256sum | cut -d' ' -f1)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '%s-root: %s\n' "$SUITE" "$*" >&2; }

T0=$(now)
exec 9>"$LOCK"
if ! flock -w 3600 9; then
    log "timed out waiting for $LOCK"
    exit 1
fi
log "lock acquired after $(elapsed "$T0") s"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && [ -x "$ROOT/usr/bin/apt-get" ]; then
    log "$ROOT is up to date (stamp $HASH)"
    exit 0
fi

# Refuse to touch a tree that something (an overlay of a running test, debootstrap's /proc) still uses.
mounted_under() {
    # mount points are field 5 of /proc/self/mountinfo (octal escapes for spaces; our paths have none)
    awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
still_used() {
    [ -n "$(mounted_under "$1")" ] ||
        grep -F -- "$1" /proc/self/mountinfo | grep -q -E "(lowerdir|upperdir)=([^,]*:)?$1([:,/]|$)"
}
remove_tree() {
    local d=$1 m
    [ -e "$d" ] || return 0
    # debootstrap mounts proc/sys inside the target and may leave them after a failure
    for m in $(mounted_under "$d"); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if [ -n "$(mounted_under "$d")" ]; then
        log "cannot unmount everything under $d"
        return 1
    fi
    rm -rf --one-file-system "$d"
}

if [ -e "$ROOT" ]; then
    if still_used "$ROOT"; then
        log "$ROOT is out of date but a mount still uses it; unmount it first"
        exit 1
    fi
    rm -f "$STAMP"
    log "removing out-of-date $ROOT"
    remove_tree "$ROOT"
fi
rm -f "$STAMP"

mkdir -p "$DEBS"
T_DEB=$(now)
attempt=1
while :; do
    remove_tree "$PARTIAL"
    log "debootstrap attempt $attempt: $SUITE $VARIANT --include=$INCLUDE from $MIRROR"
    if debootstrap --variant="$VARIANT" --include="$INCLUDE" --cache-dir="$DEBS" \
        "$SUITE" "$PARTIAL" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        break
    fi
    log "debootstrap attempt $attempt failed; last lines of $CACHE/debootstrap.log:"
    tail -n 15 "$CACHE/debootstrap.log" >&2 || true
    [ -f "$PARTIAL/debootstrap/debootstrap.log" ] && tail -n 15 "$PARTIAL/debootstrap/debootstrap.log" >&2
    if [ "$attempt" -ge 3 ]; then
        remove_tree "$PARTIAL"
        log "giving up after $attempt attempts"
        exit 1
    fi
    sleep $((attempt * attempt * 10))   # 10 s, then 40 s
    attempt=$((attempt + 1))
done
log "debootstrap took $(elapsed "$T_DEB") s"

T_POST=$(now)
R=$PARTIAL
chroot "$R" apt-get clean
rm -rf "${R:?}"/var/lib/apt/lists/*
mkdir -p "$R/var/lib/apt/lists/partial"
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
echo "$HOSTNAME_" >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$HOSTNAME_" >"$R/etc/hosts"
rm -f "$R"/etc/apt/sources.list.d/*
if [ "$SUITE" = bookworm ]; then
    echo "deb http://deb.debian.org/debian $SUITE main" >"$R/etc/apt/sources.list"
else
    # As trixie's cloud images: deb822, the mirrors named in /etc/apt/mirrors/*.list.
    rm -f "$R/etc/apt/sources.list"
    mkdir -p "$R/etc/apt/mirrors"
    echo "http://deb.debian.org/debian" >"$R/etc/apt/mirrors/debian.list"
    echo "http://deb.debian.org/debian-security" >"$R/etc/apt/mirrors/debian-security.list"
    printf '%s\n' 'Types: deb' 'URIs: mirror+file:///etc/apt/mirrors/debian.list' \
        "Suites: $SUITE $SUITE-updates $SUITE-backports" 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' 'Types: deb' \
        'URIs: mirror+file:///etc/apt/mirrors/debian-security.list' "Suites: $SUITE-security" \
        'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
        >"$R/etc/apt/sources.list.d/debian.sources"
fi
printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n' >"$R/etc/network/interfaces"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$R/etc/fstab"
chroot "$R" passwd -d root >/dev/null
# debootstrap copies the host's resolv.conf; a test image must not carry the host's resolver
rm -f "$R/etc/resolv.conf"
: >"$R/etc/resolv.conf"
rm -rf "${R:?}"/var/log/apt/* "$R/var/log/dpkg.log" "$R/var/log/alternatives.log" "$R/var/log/bootstrap.log"
rm -rf "${R:?}"/tmp/* "${R:?}"/var/tmp/*
log "post-processing took $(elapsed "$T_POST") s"

mv "$PARTIAL" "$ROOT"
echo "$HASH" >"$STAMP"
log "size: $(du -sh --one-file-system "$ROOT" | cut -f1) ($ROOT); debs cache: $(du -sh "$DEBS" | cut -f1)"
log "done in $(elapsed "$T0") s"
