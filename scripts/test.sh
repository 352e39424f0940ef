#!/usr/bin/env bash
# The one test command: installs what the tests need (when run as root with apt-get, as CI
# does), then runs every test, end-to-end ones included. Without root the end-to-end tests
# skip with a loud message; with CI=true a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Network steps are retried: a slow mirror must not sink a run.
retry() {
    local attempt
    for attempt in 1 2 3 4; do
        if "$@"; then return 0; fi
        echo "scripts/test.sh: attempt $attempt of '$*' failed; retrying in $((attempt * 10)) s" >&2
        sleep $((attempt * 10))
    done
    "$@"
}

HOST_PACKAGES=(
    # end-to-end apt tests: a debootstrapped root, a signed local repository
    debootstrap apt-utils dpkg-dev gnupg
    # the compat corpus is recorded with Debian's cloud-init; the benchmark compares with it
    cloud-init
    # tests/packaging.rs: dpkg-buildpackage -b (dpkg-dev above; build-essential is what
    # dpkg-checkbuilddeps requires implicitly), lintian, man (man page warnings) and
    # systemd-analyze verify (systemd)
    build-essential debhelper lintian man-db systemd
)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    missing=()
    for p in "${HOST_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        retry apt-get update -o Acquire::Retries=3
        retry apt-get install -y --no-install-recommends -o Acquire::Retries=3 "${missing[@]}"
    fi
fi

cargo test --all-targets "$@"
