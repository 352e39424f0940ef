#!/usr/bin/env bash
# Benchmark: `write_files` with 250 to 2,000 entries. `cloudcfg plan` and `cloudcfg apply --root`
# into an empty directory (state, report and every file through the atomic writer), side by
# side with cloud-init's own module code (Debian's cloud-init, cc_write_files.write_files) on
# the same user data and machine: its process loads the YAML and writes the same files under
# the same directory. cloud-init's figure leaves out the rest of its boot, so the ratio is the
# least cloudcfg saves. Timings are measured here, asserted nowhere.
#
#   benches/write-files.sh [OUTDIR]     (needs hyperfine and cloud-init: apt-get install both)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench/write-files}
mkdir -p "$out"
cargo build --release --quiet
bin=$PWD/target/release/cloudcfg
python=/usr/bin/python3   # cloud-init's own interpreter, not a pyenv or venv one

make_files() { # N FILE
    {
        echo "#cloud-config"
        echo "write_files:"
        for i in $(seq 1 "$1"); do
            echo "  - path: /srv/bench/dir-$((i % 20))/file-$i.conf"
            if [ $((i % 2)) = 0 ]; then
                echo "    encoding: b64"
                echo "    content: $(printf 'setting-%d = value\n' "$i" | base64 -w0)"
            else
                echo "    content: |"
                echo "      # file $i"
                echo "      setting-$i = value"
            fi
            echo "    permissions: '0644'"
        done
    } > "$2"
}

cat > "$out/cloud-init-write-files.py" <<'PY'
# cloud-init's write_files module code on a user-data file, with every path under ROOT.
import sys
from cloudinit import util
from cloudinit.config.cc_write_files import write_files
user_data, root = sys.argv[1], sys.argv[2]
cfg = util.load_yaml(util.load_file(user_data))
files = cfg["write_files"]
for f in files:
    f["path"] = root + f["path"]
write_files("write_files", files, "root:root")
PY

sizes=(250 500 1000 2000)
for n in "${sizes[@]}"; do make_files "$n" "$out/files-$n.yaml"; done
work=$(mktemp -d /var/tmp/cloudcfg-bench-wf-XXXXXX)
trap 'rm -rf "$work"' EXIT
export CLOUDCFG_RUNTIME_DIR=$work/run
facts=(--instance-id i-bench --hostname web1 --fqdn web1.example.org --release bookworm --config /nonexistent)
# Before each run: an empty root and a clean file system. The last run's root is moved aside,
# not deleted: creating files right after deleting as many makes ext4 search for inodes that
# were not just freed (recently_deleted), which cost a second per run and measured the kernel.
cat > "$work/prepare.sh" <<SH
mkdir -p $work/trash
[ ! -e $work/root ] || mv $work/root $work/trash/\$(date +%s%N)
rm -rf $work/run
mkdir -p $work/root
sync
SH
for n in "${sizes[@]}"; do
    f=$out/files-$n.yaml
    hyperfine --style none --warmup 2 --min-runs "${RUNS:-10}" -N --export-json "$out/n$n.json" \
        --prepare "bash $work/prepare.sh" \
        --command-name plan "$bin plan --user-data $f ${facts[*]}" \
        --command-name apply "$bin apply --user-data $f --root $work/root ${facts[*]}" \
        --command-name cloud-init "$python $out/cloud-init-write-files.py $f $work/root" \
        >/dev/null
done
# The files both wrote are the same (content and mode), or the comparison means nothing.
bash "$work/prepare.sh"
"$bin" apply --user-data "$out/files-1000.yaml" --root "$work/root" "${facts[@]}" >/dev/null
mv "$work/root/srv" "$work/cloudcfg-srv"
"$python" "$out/cloud-init-write-files.py" "$out/files-1000.yaml" "$work/root"
diff -r "$work/cloudcfg-srv" "$work/root/srv" >/dev/null || { echo "the two wrote different files" >&2; exit 1; }
[ "$(cd "$work/cloudcfg-srv" && find . -type f -printf '%m %p\n' | sort)" = \
  "$(cd "$work/root/srv" && find . -type f -printf '%m %p\n' | sort)" ] || { echo "modes differ" >&2; exit 1; }

python3 - "$out" "${sizes[@]}" <<'PY' | tee "$out/summary.md"
import json, sys
out, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
# Medians: on a shared VM the kernel now and then stalls one run for a second (its system
# time, not cloudcfg's), which a mean would carry.
print("| entries | cloudcfg plan | cloudcfg apply --root | cloud-init write_files | ratio (apply) | apply per entry |")
print("|---|---|---|---|---|---|")
for n in sizes:
    r = {x["command"]: x["median"] * 1000 for x in json.load(open(f"{out}/n{n}.json"))["results"]}
    print(f"| {n:,} | {r['plan']:.1f} ms | {r['apply']:.1f} ms | {r['cloud-init']:.1f} ms | "
          f"{r['cloud-init'] / r['apply']:.1f}x | {r['apply'] / n * 1000:.0f} µs |")
PY
