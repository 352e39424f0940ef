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
    debootstrap dpkg-dev gnupg
    # NoCloud cidata seed images (tests/datasource.rs)
    genisoimage dosfstools
    # puppet end to end (tests/e2e_puppet.rs): Debian's puppetserver pulls a JRE
    puppetserver puppet-agent default-jre-headless curl
    # VM tests (tests/e2e_vm.rs, tests/vm/): mkfs.ext4 -d and debugfs, the guestfwd relay
    # (tests/vm/fwd.py), strip for the image's cloudcfg binary; qemu comes below
    e2fsprogs python3 binutils
    # tests/e2e_vm.rs logs in to the guests (ssh, ssh-keygen, ssh-keyscan)
    openssh-client
    # key fetches through apt's proxy (tests/keys.rs); the key_url HTTPS server's CA (openssl)
    tinyproxy openssl
    # the virtualenv of moto's S3 server (tests/autosign_s3.rs), installed from PyPI below
    python3-venv
    # tests/packaging.rs: dpkg-buildpackage -b (dpkg-dev above; build-essential is what
    # dpkg-checkbuilddeps requires implicitly), lintian, man (man page warnings) and
    # systemd-analyze verify (systemd)
    build-essential debhelper lintian man-db systemd
)
# QEMU for the VM tests. On bookworm it comes from bookworm-backports: a host that already has
# the backports qemu-utils cannot install bookworm's qemu-system-x86 beside it
# (shared/spec/vm-notes.md, Pitfall 1); elsewhere the release's own is fine.
QEMU_PACKAGES=(qemu-system-x86 qemu-utils)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    missing=()
    for p in "${HOST_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    qemu_missing=()
    for p in "${QEMU_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || qemu_missing+=("$p")
    done
    qemu_target=()
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    if [ "${#qemu_missing[@]}" -gt 0 ] && [ "$codename" = bookworm ]; then
        qemu_target=(-t bookworm-backports)
        if ! cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
            2>/dev/null | grep -q '^[^#]*bookworm-backports'; then
            printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
                'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
                >/etc/apt/sources.list.d/bookworm-backports.sources
        fi
    fi
    if [ "${#missing[@]}" -gt 0 ] || [ "${#qemu_missing[@]}" -gt 0 ]; then
        retry apt-get update -o Acquire::Retries=3
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        retry apt-get install -y --no-install-recommends -o Acquire::Retries=3 "${missing[@]}"
    fi
    if [ "${#qemu_missing[@]}" -gt 0 ]; then
        retry apt-get install -y --no-install-recommends -o Acquire::Retries=3 "${qemu_target[@]}" \
            "${QEMU_PACKAGES[@]}"
    fi
fi

# A real S3 API server for the autosign store tests (tests/autosign_s3.rs): moto's server from
# PyPI, in a virtualenv in the e2e cache (reused across runs).
MOTO_VENV=${CLOUDCFG_E2E_CACHE:-/var/tmp/cloudcfg-e2e}/moto-venv
if [ ! -x "$MOTO_VENV/bin/moto_server" ] && command -v python3 >/dev/null; then
    mkdir -p "$(dirname "$MOTO_VENV")"
    python3 -m venv "$MOTO_VENV" && retry "$MOTO_VENV/bin/pip" install -q "moto[server]==5.2.6" ||
        echo "scripts/test.sh: could not install moto[server]; tests/autosign_s3.rs will skip" >&2
fi

cargo test --all-targets "$@"
