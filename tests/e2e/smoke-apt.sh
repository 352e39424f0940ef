#!/usr/bin/env bash
# Smoke test of the end-to-end pieces without cloudcfg: the cached bookworm root (bookworm-root.sh),
# an overlayfs on top of it, and the signed local repository (make-repo.sh) served on 127.0.0.1.
# Checks that apt inside the chroot verifies the repository with the right key, installs the test
# package, and refuses the repository when signed-by names another key.
#
# usage: tests/e2e/smoke-apt.sh [CACHE_DIR]     (default: $CLOUDCFG_E2E_CACHE or /var/tmp/cloudcfg-e2e)
#
# Needs (host): root, overlayfs, /usr/bin/python3 (the throw-away web server), and what
# bookworm-root.sh and make-repo.sh need. Touches no network but 127.0.0.1 once the root is cached
# (the root's own sources.list is emptied inside the overlay, so apt only sees the local repo).
# Everything is undone on exit, also on failure or Ctrl-C. Exit status: 0 ok, 1 a check failed.
set -euo pipefail
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${1:-${CLOUDCFG_E2E_CACHE:-/var/tmp/cloudcfg-e2e}}
PKG=cloudcfg-e2e-hello
PY=/usr/bin/python3

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
say() { printf 'smoke-apt: %s\n' "$*"; }
fail() { printf 'smoke-apt: FAIL: %s\n' "$*" >&2; exit 1; }

T_ALL=$(now)
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudcfg-smoke.XXXXXX")
R=$T/root
MOUNTS=()
SERVER_PID=

cleanup() {
    local rc=$? i
    set +e
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" ||
            echo "smoke-apt: could not unmount ${MOUNTS[i]}" >&2
    done
    if awk -v p="$T" 'index($5, p) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "smoke-apt: something is still mounted under $T; leaving it" >&2
    else
        rm -rf --one-file-system "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mnt() { # mnt TARGET MOUNT-ARGS...: mount and remember for cleanup
    local target=$1
    shift
    mount "$@" "$target"
    MOUNTS+=("$target")
}

in_root() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        chroot "$R" "$@"
}

# 1. the cached root
t=$(now)
"$here/bookworm-root.sh" "$CACHE"
say "bookworm-root.sh: $(since "$t") s"

# 2. the signed repository
t=$(now)
"$here/make-repo.sh" "$T/repo-out" "$PKG" 2>"$T/make-repo.log" || { cat "$T/make-repo.log" >&2; fail "make-repo.sh"; }
say "make-repo.sh: $(since "$t") s (key $(cat "$T/repo-out/fingerprint"))"

# 3. overlay + API filesystems + policy-rc.d
t=$(now)
mkdir -p "$T/upper" "$T/work" "$R"
mnt "$R" -t overlay overlay -o "lowerdir=$CACHE/bookworm,upperdir=$T/upper,workdir=$T/work"
mnt "$R/proc" -t proc proc
mnt "$R/sys" --bind /sys
mnt "$R/dev" --bind /dev
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
: >"$R/etc/apt/sources.list"   # only the local repository, in this overlay
say "overlay and mounts: $(since "$t") s"

# 4. the web server (python's, for this script only; the Rust tests use tests/support/http.rs)
"$PY" - "$T/repo-out/repo" "$T/port" >"$T/http.log" 2>&1 <<'PY' &
import functools, http.server, os, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
PY
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "web server did not start: $(cat "$T/http.log")"
PORT=$(cat "$T/port")
say "web server on 127.0.0.1:$PORT (pid $SERVER_PID)"

# 5. right key: update verifies the signature, install works
mkdir -p "$R/etc/apt/keyrings"
install -m 0644 "$T/repo-out/key.asc" "$R/etc/apt/keyrings/e2e.asc"
echo "deb [signed-by=/etc/apt/keyrings/e2e.asc] http://127.0.0.1:$PORT/debian bookworm main" \
    >"$R/etc/apt/sources.list.d/e2e.list"
t=$(now)
if ! in_root apt-get update >"$T/update-good.log" 2>&1; then
    cat "$T/update-good.log" >&2
    fail "apt-get update with the right key"
fi
cat "$T/update-good.log"
if grep -E '^(W|E):' "$T/update-good.log" >/dev/null; then
    fail "apt-get update with the right key printed warnings or errors"
fi
say "apt-get update (right key): $(since "$t") s"

t=$(now)
if ! in_root apt-get install -y --no-install-recommends "$PKG" >"$T/install.log" 2>&1; then
    cat "$T/install.log" >&2
    fail "apt-get install $PKG"
fi
tail -n 4 "$T/install.log"
marker=$R/usr/share/$PKG/marker
[ -f "$marker" ] || fail "$marker missing"
[ "$(cat "$marker")" = "$PKG 1.0-1" ] || fail "$marker: unexpected content: $(cat "$marker")"
[ "$(in_root dpkg-query -W -f '${Status} ${Version}' "$PKG")" = "install ok installed 1.0-1" ] ||
    fail "dpkg does not list $PKG 1.0-1 as installed"
say "apt-get install $PKG: $(since "$t") s; marker: $(cat "$marker")"

# 6. wrong key: update must fail on the signature (and not because of anything else)
install -m 0644 "$T/repo-out/wrong-key.asc" "$R/etc/apt/keyrings/e2e.asc"
rm -rf "${R:?}"/var/lib/apt/lists/*
t=$(now)
if in_root apt-get update >"$T/update-wrong.log" 2>&1; then
    cat "$T/update-wrong.log" >&2
    fail "apt-get update succeeded with the wrong key"
fi
cat "$T/update-wrong.log"
grep -E 'NO_PUBKEY|is not signed' "$T/update-wrong.log" >/dev/null ||
    fail "apt-get update failed, but not with a signature error"
grep -F "NO_PUBKEY ${FPR_SHORT:=$(cut -c25-40 "$T/repo-out/fingerprint")}" "$T/update-wrong.log" >/dev/null ||
    fail "the signature error does not name the signing key $FPR_SHORT"
say "apt-get update (wrong key) failed as expected: $(since "$t") s"

say "requests served: $(grep -c '"GET ' "$T/http.log")"
say "OK in $(since "$T_ALL") s"
