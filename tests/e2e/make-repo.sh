#!/usr/bin/env bash
# Build a small signed apt repository for the end-to-end tests, with throw-away OpenPGP keys.
#
# usage: tests/e2e/make-repo.sh OUTDIR [PACKAGE_NAME...]      (default package: cloudcfg-e2e-hello)
#
# Writes (OUTDIR is emptied of these first, so the script can be re-run on the same OUTDIR):
#   OUTDIR/repo/               the web root. Serve it on 127.0.0.1:PORT and use
#                                deb [signed-by=KEYFILE] http://127.0.0.1:PORT/debian bookworm main
#   OUTDIR/repo/debian/dists/bookworm/{Release,InRelease,Release.gpg}
#   OUTDIR/repo/debian/dists/bookworm/main/binary-{all,amd64,arm64}/Packages{,.gz}   (arch-specific ones empty)
#   OUTDIR/repo/debian/pool/main/<name>_<version>_all.deb
#   OUTDIR/key.asc             armored public key that signed the repository
#   OUTDIR/fingerprint         its fingerprint: 40 upper-case hex digits, one line
#   OUTDIR/wrong-key.asc       a second, unrelated throw-away public key (signs nothing)
#   OUTDIR/wrong-fingerprint   its fingerprint
#
# SUITE (environment, default bookworm) names the one suite.
# Each package NAME is version 1.0-1, Architecture: all, and installs /usr/share/NAME/marker whose
# content is the line "NAME 1.0-1". VERSIONS="1.0-1 2.0-1" (environment) builds several versions of
# each package (the highest is the candidate; NAME=1.0-1 pins the older one).
#
# The keys are new on every run (ed25519, no passphrase, made in a temporary GNUPGHOME that is
# removed afterwards); everything else is reproducible (SOURCE_DATE_EPOCH, fixed owners).
#
# Needs (host): gnupg (gpg, gpg-agent, gpgconf), dpkg-dev (dpkg-scanpackages), dpkg (dpkg-deb),
# coreutils, gzip. Takes well under a second plus key generation (~0.1 s each for ed25519).
set -euo pipefail
export LC_ALL=C.UTF-8

if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR [PACKAGE_NAME...]" >&2
    exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
shift
PACKAGES=("$@")
[ ${#PACKAGES[@]} -gt 0 ] || PACKAGES=(cloudcfg-e2e-hello)
read -r -a VERS <<<"${VERSIONS:-1.0-1}"
SUITE=${SUITE:-bookworm}
COMPONENT=main
ARCHES=(all amd64 arm64)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

for n in "${PACKAGES[@]}"; do
    if ! [[ $n =~ ^[a-z0-9][a-z0-9+.-]+$ ]]; then
        echo "$0: invalid package name: $n" >&2
        exit 2
    fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-repo.XXXXXX")
export GNUPGHOME=$WORK/gnupg
cleanup() {
    gpgconf --kill all >/dev/null 2>&1 || true   # the agent of our GNUPGHOME only
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -m 0700 "$GNUPGHOME"
printf 'pinentry-mode loopback\ntrust-model always\n' >"$GNUPGHOME/gpg.conf"

rm -rf "$OUT/repo" "$OUT/key.asc" "$OUT/fingerprint" "$OUT/wrong-key.asc" "$OUT/wrong-fingerprint"

# --- keys -----------------------------------------------------------------------------------------
G=(gpg --batch --quiet --no-tty --passphrase '')
"${G[@]}" --quick-gen-key 'cloudcfg e2e repository <e2e-repo@cloudcfg.invalid>' ed25519 sign never
"${G[@]}" --quick-gen-key 'cloudcfg e2e wrong key <e2e-wrong@cloudcfg.invalid>' ed25519 sign never
fpr_of() {
    gpg --batch --with-colons --fingerprint "$1" | awk -F: '$1 == "fpr" { print toupper($10); exit }'
}
FPR=$(fpr_of e2e-repo@cloudcfg.invalid)
WRONG=$(fpr_of e2e-wrong@cloudcfg.invalid)
[[ $FPR =~ ^[0-9A-F]{40}$ && $WRONG =~ ^[0-9A-F]{40}$ ]] || { echo "$0: no fingerprint" >&2; exit 1; }
gpg --batch --armor --export "$FPR" >"$OUT/key.asc"
gpg --batch --armor --export "$WRONG" >"$OUT/wrong-key.asc"
echo "$FPR" >"$OUT/fingerprint"
echo "$WRONG" >"$OUT/wrong-fingerprint"

# --- packages -------------------------------------------------------------------------------------
BASE=$OUT/repo/debian
POOL=$BASE/pool/$COMPONENT
DIST=$BASE/dists/$SUITE
mkdir -p "$POOL"
for n in "${PACKAGES[@]}"; do
    for v in "${VERS[@]}"; do
        P=$WORK/pkg/$n-$v
        mkdir -p "$P/DEBIAN" "$P/usr/share/$n" "$P/usr/share/doc/$n"
        printf '%s %s\n' "$n" "$v" >"$P/usr/share/$n/marker"
        printf 'Test package built by cloudcfg tests/e2e/make-repo.sh. Public domain.\n' \
            >"$P/usr/share/doc/$n/copyright"
        cat >"$P/DEBIAN/control" <<EOF
Package: $n
Version: $v
Architecture: all
Maintainer: cloudcfg tests <e2e@cloudcfg.invalid>
Installed-Size: 8
Section: misc
Priority: optional
Description: cloudcfg end-to-end test package
 Installs /usr/share/$n/marker and nothing else. Built by the
 cloudcfg test suite for a throw-away local repository.
EOF
        # A deterministic "killed during the package install" point for the convergence tests:
        # when /etc/cloudcfg-e2e/kill-in-postinst exists, the postinst removes it and SIGKILLs
        # the process group of the cloudcfg that runs this install (apt-get, dpkg and itself
        # included), leaving the package half-configured. Without the flag it does nothing.
        cat >"$P/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
flag=/etc/cloudcfg-e2e/kill-in-postinst
[ -f "$flag" ] || exit 0
rm -f "$flag"
# Walk up to the cloudcfg that runs this install (not another one running beside it); the
# tests start cloudcfg as the leader of its own process group, so this kills nothing else.
# dpkg may run outside that group (apt gives it a pty, and with it a session of its own), and
# would then record the package configured once this script returns, before the hangup of
# the dead apt-get reaches it: so every ancestor up to cloudcfg is killed first, nearest first.
p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$$/status)
ancestors=
while [ "$p" -gt 1 ]; do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = cloudcfg ]; then
        for q in $ancestors; do kill -KILL "$q"; done
        # dash's kill takes a negative pid (a process group) without `--`.
        kill -KILL "-$(cut -d' ' -f5 "/proc/$p/stat")"
        break
    fi
    ancestors="$ancestors $p"
    p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status")
done
exit 0
POSTINST
        chmod 0755 "$P/DEBIAN/postinst"
        find "$P" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
        chmod -R u=rwX,go=rX "$P"
        dpkg-deb --root-owner-group -Zgzip --build "$P" "$POOL/${n}_${v}_all.deb" >/dev/null
    done
done

# --- indexes --------------------------------------------------------------------------------------
(
    cd "$BASE"
    for a in "${ARCHES[@]}"; do
        d=dists/$SUITE/$COMPONENT/binary-$a
        mkdir -p "$d"
        if [ "$a" = all ]; then
            dpkg-scanpackages --multiversion --arch all "pool/$COMPONENT" /dev/null 2>/dev/null >"$d/Packages"
        else
            : >"$d/Packages"
        fi
        gzip -9n <"$d/Packages" >"$d/Packages.gz"
        printf 'Archive: %s\nComponent: %s\nArchitecture: %s\n' "$SUITE" "$COMPONENT" "$a" >"$d/Release"
    done
)
grep -q "^Package: " "$DIST/$COMPONENT/binary-all/Packages" || { echo "$0: empty Packages" >&2; exit 1; }

# Release: what apt-ftparchive would write, by hand (no apt-utils needed).
(
    cd "$DIST"
    files=$(find "$COMPONENT" -type f | sort)
    {
        echo "Origin: cloudcfg-e2e"
        echo "Label: cloudcfg-e2e"
        echo "Suite: $SUITE"
        echo "Codename: $SUITE"
        echo "Date: $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
        echo "Architectures: ${ARCHES[*]:1} all"   # arch-specific first, as Debian does
        echo "Components: $COMPONENT"
        echo "Description: cloudcfg end-to-end test repository"
        for algo in MD5Sum:md5sum SHA256:sha256sum; do
            echo "${algo%%:*}:"
            for f in $files; do
                printf ' %s %16d %s\n' "$(${algo#*:} "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
            done
        done
    } >Release
)

gpg --batch --yes --local-user "$FPR" --digest-algo SHA512 --clearsign -o "$DIST/InRelease" "$DIST/Release"
gpg --batch --yes --local-user "$FPR" --digest-algo SHA512 --armor --detach-sign -o "$DIST/Release.gpg" "$DIST/Release"

# Self-check with a keyring made of key.asc only (what apt's signed-by does).
gpg --batch --yes --dearmor -o "$WORK/check.gpg" "$OUT/key.asc"
gpgv --quiet --keyring "$WORK/check.gpg" "$DIST/InRelease" 2>/dev/null
gpgv --quiet --keyring "$WORK/check.gpg" "$DIST/Release.gpg" "$DIST/Release" 2>/dev/null

echo "make-repo: $OUT/repo (packages: ${PACKAGES[*]}; versions: ${VERS[*]}; key $FPR; wrong key $WRONG)" >&2
