#!/usr/bin/env bash
# Record what the real cloud-init (Debian's 22.4.2 package) does with every case of the corpus.
#
# usage: tests/compat/record.sh [CASE...]      (default: every directory under tests/compat/cases)
#
# For each case it runs the oracle ../shared/tools/oracle/ci_render.py (cloud-init's own apt_pipelining, apt_configure,
# package_update_upgrade_install and puppet module code against a scratch root, commands recorded,
# not executed) once per entry of case.json "system_cfg", and `cloud-init schema --config-file`, and
# writes the normalised, deterministic records
#   tests/compat/cases/<case>/cloud-init.json          (--system-cfg none)
#   tests/compat/cases/<case>/cloud-init-debian.json   (--system-cfg debian: Debian's /etc/cloud/cloud.cfg)
# Format and flags: tests/compat/README.md. Needs: /usr/bin/python3, Debian's cloud-init package, gpg,
# and ../shared beside the repository (or ORACLE=/path/to/ci_render.py). Prints one line per record.
# Exit status: 0 all recorded, 1 a case or the oracle failed, 2 usage, 3 the oracle reported a
# sandbox escape (something in cloud-init tried to write, execute or connect outside its scratch root).
set -euo pipefail
export LC_ALL=C.UTF-8   # stable glob order and messages

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)          # tests/compat
repo=$(cd "$here/../.." && pwd)
ORACLE=${ORACLE:-$repo/../shared/tools/oracle/ci_render.py}
CLOUD_INIT=${CLOUD_INIT:-cloud-init}
PYTHON=/usr/bin/python3
MODULES=apt_pipelining,apt_configure,package_update_upgrade_install,puppet
# dpkg-query --list answers of the target (debconf reconfiguration): a Debian 12 cloud image's view
INSTALLED=(apt cloud-init debconf openssh-server tzdata)
# commands the target has besides the oracle's defaults (apt-get, gpg, dpkg, dpkg-query,
# debconf-set-selections, systemctl, service, lsb_release, sed, puppet; on Ubuntu also eatmydata and
# add-apt-repository): dpkg-reconfigure comes with debconf on every Debian/Ubuntu system
HAVE=(dpkg-reconfigure)
# keyids that `gpg --export` answers with the real throwaway key (keys/throwaway.asc) after
# `gpg --recv-keys`; any other keyid gets the oracle's deterministic fake armored block
KEY_ALIASES=(
  "B54F83BA163D7715"
  "0xB54F83BA163D7715"
  "163D7715"
  "897FB1D86845F884F32374A8B54F83BA163D7715"
  "0x897FB1D86845F884F32374A8B54F83BA163D7715"
  "897F B1D8 6845 F884 F323  74A8 B54F 83BA 163D 7715"
  "897F B1D8 6845 F884 F323 74A8 B54F 83BA 163D 7715"
)

die() { echo "record.sh: $*" >&2; exit 1; }

[ -x "$PYTHON" ] || die "$PYTHON not found"
[ -f "$ORACLE" ] || die "oracle not found: $ORACLE (set ORACLE=/path/to/ci_render.py)"
ORACLE=$(cd "$(dirname "$ORACLE")" && pwd)/$(basename "$ORACLE")
command -v "$CLOUD_INIT" >/dev/null || die "'$CLOUD_INIT' not found (apt-get install cloud-init)"
command -v gpg >/dev/null || die "gpg not found (the oracle runs gpg --dearmor)"

cases_dir=$here/cases
if [ $# -gt 0 ]; then
  cases=("$@")
  for c in "${cases[@]}"; do
    c=${c%/}; c=${c##*/}
    [ -f "$cases_dir/$c/user-data.yaml" ] && [ -f "$cases_dir/$c/case.json" ] \
      || { echo "record.sh: no such case: $c (need cases/$c/user-data.yaml and case.json)" >&2; exit 2; }
  done
else
  cases=()
  for d in "$cases_dir"/*/; do cases+=("$(basename "$d")"); done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cloudcfg-compat.XXXXXXXX")
trap 'rm -rf "$work"' EXIT

# a fresh GnuPG home for anything gpg might do outside the oracle's own (the oracle uses its own)
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"

keydir=$work/keys
mkdir "$keydir"
for k in "${KEY_ALIASES[@]}"; do cp "$here/keys/throwaway.asc" "$keydir/$k.asc"; done

cat > "$work/normalize.py" <<'PYEOF'
"""normalize.py OUTDIR_NONE... -> one record (see tests/compat/README.md)."""
import json
import sys

(outdir, display_args_json, schema_rc, schema_out, schema_err, dest, work, repo) = sys.argv[1:9]


def load(name):
    with open(outdir + "/" + name) as f:
        return json.load(f)


replacements = [
    (outdir + "/root/", "/"),
    (outdir + "/root", "/"),
    (outdir + "/state", "<state>"),
    (outdir, "<outdir>"),
    (work, "<work>"),
    (repo, "<repo>"),
]


def norm(v):
    if isinstance(v, str):
        for a, b in replacements:
            v = v.replace(a, b)
        return v
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {norm(k): norm(x) for k, x in v.items()}
    return v


report = load("report.json")
commands = []
for c in load("commands.json"):
    rec = {"module": c["module"], "argv": c["argv"], "env": c.get("env_add", {}),
           "stdin": c.get("stdin"), "kind": c["kind"]}
    if "stdin_b64" in c:
        rec["stdin_base64"] = c["stdin_b64"]
    if c.get("rc", 0) != 0:
        rec["rc"] = c["rc"]
    for k in ("error", "shell", "cwd", "env_removed"):
        if c.get(k):
            rec[k] = c[k]
    commands.append(rec)

fj = load("files.json")
files = []
for f in fj["files"]:
    if f["status"] == "unchanged":
        continue  # seeded by the oracle or by tests/compat/target and left alone by cloud-init
    ent = {"path": f["path"], "status": f["status"]}
    if f["status"] != "deleted":
        ent["mode"] = f["mode"]
        ent["owner"] = f.get("owner", "root:root")
        if "content" in f:
            ent["content"] = f["content"]
        else:
            ent["content_base64"] = f["content_b64"]
    files.append(ent)

explicit_mode = {op["path"]: op["mode"] for op in report["ops"]
                 if op["op"] == "mkdir" and op.get("mode")}
dirs = []
for d in fj["dirs"]:
    if d["path"] in explicit_mode or "owner" in d:
        dirs.append({"path": d["path"], "mode": d["mode"], "owner": d.get("owner", "root:root")})

modules = {}
for m in report["modules"]:
    st = m["status"]
    if st.startswith("skipped"):
        st = "skipped"
    modules[m["module"]] = {"status": st, "exception": m.get("exception")}

warnings = [{"module": w["module"], "level": w["level"], "message": w["msg"]}
            for w in report["warnings"]]

# what cloud-init would have looked up or downloaded (the oracle answers: no name resolves,
# every download returns a fake script)
network = [{"module": p["module"], "probe": p["probe"], "target": p["path"]}
           for p in report["probes"] if p["probe"] in ("dns", "readurl")]


def read(p):
    with open(p, encoding="utf-8", errors="replace") as f:
        return f.read()


rc = int(schema_rc)
record = {
    "oracle": {"args": json.loads(display_args_json),
               "cloud_init_version": report["cloud_init_version"]},
    "commands": commands,
    "files": files,
    "dirs": dirs,
    "modules": modules,
    "warnings": warnings,
    "network": network,
    "schema": {"exit_code": rc, "valid": rc == 0, "output": read(schema_out) + read(schema_err)},
}
record = norm(record)
text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
for leak in (outdir, work, repo):
    if leak in text:
        sys.exit("normalize.py: %s leaked into the record" % leak)
with open(dest + ".tmp", "w") as f:
    f.write(text)
summary = " ".join("%s=%s" % (k, v["status"]) for k, v in modules.items())
print("%s; %d commands, %d files; schema %s (exit %d)" % (
    summary, len(commands), len(files), "valid" if rc == 0 else "INVALID", rc))
PYEOF

status=0
for c in "${cases[@]}"; do
  c=${c%/}; c=${c##*/}
  dir=$cases_dir/$c
  # case.json -> shell variables (release, instance id, fqdn, system configs)
  eval "$("$PYTHON" - "$dir/case.json" <<'PYEOF'
import json, shlex, sys
c = json.load(open(sys.argv[1]))
for k in ("release", "instance_id", "fqdn"):
    print("%s=%s" % (k, shlex.quote(str(c[k]))))
s = c.get("system_cfg") or ["none"]
assert all(x in ("none", "debian") for x in s), s
print("system_cfgs=(%s)" % " ".join(shlex.quote(x) for x in s))
PYEOF
)"

  # cloud-init schema, from a scratch copy so that messages name only "user-data.yaml"
  sdir=$work/schema-$c
  mkdir "$sdir"
  cp "$dir/user-data.yaml" "$sdir/user-data.yaml"
  set +e
  (cd "$sdir" && LC_ALL=C.UTF-8 "$CLOUD_INIT" schema --config-file user-data.yaml \
      >"$sdir/stdout" 2>"$sdir/stderr")
  schema_rc=$?
  set -e

  for scfg in "${system_cfgs[@]}"; do
    if [ "$scfg" = none ]; then rec=cloud-init.json; else rec=cloud-init-$scfg.json; fi
    out=$work/out-$c-$scfg
    args=(--release "$release" --system-cfg "$scfg" --instance-id "$instance_id" --fqdn "$fqdn"
          --modules "$MODULES" --seed-dir "$here/target" --key-dir "$keydir" --dearmor real)
    shown=(--release "$release" --system-cfg "$scfg" --instance-id "$instance_id" --fqdn "$fqdn"
           --modules "$MODULES" --seed-dir tests/compat/target --key-dir "<keys>" --dearmor real)
    for p in "${INSTALLED[@]}"; do args+=(--installed "$p"); shown+=(--installed "$p"); done
    for p in "${HAVE[@]}"; do args+=(--have "$p"); shown+=(--have "$p"); done
    set +e
    "$PYTHON" "$ORACLE" "$dir/user-data.yaml" "$out" "${args[@]}" >"$work/oracle.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 3 ]; then
      echo "record.sh: SANDBOX ESCAPE in case $c (--system-cfg $scfg): the oracle blocked:" >&2
      cat "$work/oracle.log" >&2
      "$PYTHON" -c 'import json,sys; [print("  ", b, file=sys.stderr) for b in json.load(open(sys.argv[1]))["blocked"]]' \
        "$out/report.json" || true
      exit 3
    elif [ "$rc" -ne 0 ]; then
      echo "record.sh: the oracle failed (exit $rc) on case $c (--system-cfg $scfg):" >&2
      cat "$work/oracle.log" >&2
      status=1
      continue
    fi
    shown_json=$("$PYTHON" -c 'import json,sys; print(json.dumps(["ci_render.py", "user-data.yaml", "<outdir>"] + sys.argv[1:]))' "${shown[@]}")
    line=$("$PYTHON" "$work/normalize.py" "$out" "$shown_json" "$schema_rc" "$sdir/stdout" \
             "$sdir/stderr" "$dir/$rec" "$work" "$repo") || { status=1; continue; }
    mv "$dir/$rec.tmp" "$dir/$rec"
    printf '%-44s %-7s %s\n' "$c" "$scfg" "$line"
  done
  # drop records of system configs the case no longer lists
  for f in "$dir"/cloud-init*.json; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .json); s=${b#cloud-init}; s=${s#-}; s=${s:-none}
    keep=0
    for scfg in "${system_cfgs[@]}"; do [ "$scfg" = "$s" ] && keep=1; done
    [ "$keep" = 1 ] || rm -f "$f"
  done
done
exit $status
