#!/usr/bin/env bash
# Record what Debian 13's cloud-init (25.1, the trixie package) leaves under /etc/apt for each
# case here: its own cc_apt_configure code run by the oracle (../shared/tools/oracle/ci_render.py,
# with tests/compat/oracle-25.1.patch for 25.1's API) inside a trixie root that has cloud-init
# installed, seeded with a trixie cloud image's debian.sources (seed/), `--system-cfg debian`.
#
# usage: sudo tests/compat/cloud-init-25.1/record.sh TRIXIE_ROOT_WITH_CLOUD_INIT
#   e.g. an overlay of the cached trixie root (tests/e2e/bookworm-root.sh CACHE trixie) in which
#   `apt-get install cloud-init` ran. Writes cases/*/cloud-init-25.1.apt (every file under
#   /etc/apt after the run, `==> PATH` then its content). Not run by the tests, which read the
#   records (tests/cloud_init_25.rs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
root=${1:?usage: $0 TRIXIE_ROOT_WITH_CLOUD_INIT}
oracle=${ORACLE:-$repo/../shared/tools/oracle/ci_render.py}
[ -x "$root/usr/bin/cloud-init" ] || { echo "$0: no cloud-init in $root" >&2; exit 2; }
work=$(mktemp -d "$root/tmp/record-25.1.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$oracle" "$work/ci_render.py"
patch -s "$work/ci_render.py" "$repo/tests/compat/oracle-25.1.patch"
cp -r "$here/seed" "$work/seed"
in_root=/tmp/$(basename "$work")
for case in "$here"/cases/*/; do
    name=$(basename "$case")
    cp "$case/user-data.yaml" "$work/$name.yaml"
    # Exit 3: the sandbox blocked something; 25.1 opens /var/lib/dpkg/lock-frontend to see
    # whether apt is busy, which the oracle refuses (nothing is written there either way).
    rc=0
    chroot "$root" python3 "$in_root/ci_render.py" "$in_root/$name.yaml" "$in_root/out-$name" \
        --release trixie --seed-dir "$in_root/seed" --system-cfg debian >&2 || rc=$?
    case $rc in 0 | 3) ;; *) echo "$0: the oracle failed on $name ($rc)" >&2; exit 1 ;; esac
    (cd "$work/out-$name/root" && find etc/apt -type f | sort | while read -r f; do
        echo "==> /$f"
        cat "$f"
    done) >"$case/cloud-init-25.1.apt"
    echo "recorded $name" >&2
done
