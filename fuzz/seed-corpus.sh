#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ (gitignored) with seeds: every user-data file the project has
# (tests/fixtures, examples, the compat cases, fuzz/seeds), each also gzip-compressed, plus
# multipart messages that put fixtures into parts (plain, gzip-typed, base64, nested).
# libFuzzer adds what it finds to the same directories; run this again at any time: it only
# adds files, named by their content's hash, so nothing is duplicated or lost.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(decode validate plan)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

n=0
add() { # add FILE: one seed, named by its hash
    local name
    name=$(sha1sum "$1" | cut -c1-40)
    cp "$1" "$work/$name"
    n=$((n + 1))
}

sources=()
for f in tests/fixtures/valid/* tests/fixtures/invalid/* tests/fixtures/regressions/* \
         examples/* tests/compat/cases/*/user-data* fuzz/seeds/*; do
    [ -f "$f" ] && sources+=("$f")
done

for f in "${sources[@]}"; do
    add "$f"
    gzip -9 -n -c "$f" > "$work/gz"
    add "$work/gz"
done

# Multipart: pairs of fixtures in one message, a gzip part, a base64 part, a nested multipart.
part_pairs=("examples/seed-rfc.yaml examples/seed-puppet.yaml"
            "tests/fixtures/valid/apt-v3-sources.yaml tests/fixtures/valid/packages-pinned.yaml"
            "tests/fixtures/valid/apt-proxy-credentials.yaml tests/fixtures/invalid/filename-traversal.yaml")
i=0
for pair in "${part_pairs[@]}"; do
    set -- $pair
    {
        printf 'Content-Type: multipart/mixed; boundary="B%d"\nMIME-Version: 1.0\n\n' "$i"
        printf -- '--B%d\nContent-Type: text/cloud-config\n\n' "$i"; cat "$1"
        printf -- '\n--B%d\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n' "$i"
        printf -- '--B%d\nContent-Type: application/gzip\nContent-Transfer-Encoding: base64\n\n' "$i"
        gzip -9 -n -c "$2" | base64
        printf -- '--B%d\nContent-Type: text/plain\n\n' "$i"; cat "$2"
        printf -- '\n--B%d\nContent-Type: multipart/alternative; boundary="C%d"\n\n' "$i" "$i"
        printf -- '--C%d\nContent-Type: text/cloud-config\nContent-Transfer-Encoding: quoted-printable\n\n#cloud-config\npackages: [hello=3D2.10-3]\n' "$i"
        printf -- '--C%d--\n--B%d--\n' "$i" "$i"
    } > "$work/mime"
    add "$work/mime"
    gzip -9 -n -c "$work/mime" > "$work/mime.gz"
    add "$work/mime.gz"
    i=$((i + 1))
done

for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    cp -n "$work"/[0-9a-f]* "fuzz/corpus/$t/" 2>/dev/null || true
done
echo "seed-corpus.sh: $n seeds into fuzz/corpus/{$(IFS=,; echo "${TARGETS[*]}")}"
