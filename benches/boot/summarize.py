#!/usr/bin/env python3
"""Summarise the boots of benches/boot.sh into a Markdown report.

usage: summarize.py RESULTS_JSONL [--header TEXT]

RESULTS_JSONL: one JSON object per boot, as boot.sh writes them: {"series", "tool", "config",
"round", "log" (the serial log of bootvm.py), "marker", "end", "exit", "rc", "load"}. Each serial
log is parsed for the report unit's lines (tests/vm/guest/cloudcfg-vm-report, run with ccvm.bench):
CCVM-DONE (guest uptime, system state), CCVM-SA (systemd-analyze), CCVM-BLAME (systemd-analyze
blame), CCVM-LOG (cloudcfg's commands and their durations), CCVM-CI (cloud-init status and
analyze). Prints the Markdown (medians, overheads over the bare boot, then every boot) on stdout.
"""
import json
import re
import statistics
import sys

CLOUD_INIT_UNITS = ["cloud-init-local.service", "cloud-init.service",
                    "cloud-config.service", "cloud-final.service"]


def seconds(text):
    """systemd's time spans: '1min 2.345s', '45.6s', '123ms', '2h 3min' -> seconds."""
    total, found = 0.0, False
    for value, unit in re.findall(r"([\d.]+)\s*(h|min|ms|us|s)\b", text):
        found = True
        total += float(value) * {"h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total if found else None


def marks(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            i = line.find("CCVM-")
            if i >= 0:
                out.append(line[i:].rstrip("\n"))
    return out


def parse(boot):
    m = marks(boot["log"])
    r = dict(boot)
    for line in m:
        if line.startswith("CCVM-DONE"):
            kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
            r["uptime"] = float(kv.get("uptime", "nan"))
            r["state"] = kv.get("state")
        elif line.startswith("CCVM-SA Startup finished in"):
            parts = dict((name, seconds(span)) for span, name in
                         re.findall(r"([\d.]+(?:min|ms|s)(?: [\d.]+(?:ms|s))?) \((\w+)\)", line))
            r["kernel"] = parts.get("kernel")
            r["userspace"] = parts.get("userspace")
    blame = {}
    for line in m:
        if line.startswith("CCVM-BLAME "):
            mm = re.match(r"CCVM-BLAME\s+(.*?)\s+(\S+)$", line)
            if mm:
                blame[mm.group(2)] = seconds(mm.group(1))
    r["blame"] = blame
    if boot["tool"] == "cloudcfg":
        r["tool_units"] = blame.get("cloudcfg.service")
        apt = other = 0.0
        cmd = None
        for line in m:
            if not line.startswith("CCVM-LOG "):
                continue
            if " run: " in line:
                cmd = line.split(" run: ", 1)[1]
            mm = re.search(r" (?:exit -?\d+|killed by .*) after ([\d.]+) s$", line)
            if mm and cmd is not None:
                if cmd.startswith("apt-get"):
                    apt += float(mm.group(1))
                else:
                    other += float(mm.group(1))
                cmd = None
        r["apt"], r["other_cmds"] = apt, other
        r["tool_status"] = next((l.split(": ", 1)[1] for l in m
                                 if l.startswith("CCVM-STATUS status:")), None)
    elif boot["tool"] == "cloud-init":
        units = [blame.get(u) for u in CLOUD_INIT_UNITS]
        r["tool_units"] = sum(u for u in units if u is not None) if any(units) else None
        apt = apt_configure = 0.0
        total = None
        for line in m:
            mm = re.match(r"CCVM-CI\s+([\d.]+)s \(modules-final/config-package-update-upgrade-install\)", line)
            if mm:
                apt = max(apt, float(mm.group(1)))
            mm = re.match(r"CCVM-CI\s+([\d.]+)s \(modules-config/config-apt-configure\)", line)
            if mm:
                apt_configure = max(apt_configure, float(mm.group(1)))
            mm = re.match(r"CCVM-CI Total Time: ([\d.]+) seconds", line)
            if mm:
                total = float(mm.group(1))
        # Its other commands (debconf-set-selections, gpg, the apt-get update after adding
        # sources) are not timed apart: count its whole apt-configure module, Python included,
        # so that its "own" time is a lower bound.
        r["apt"], r["other_cmds"] = apt, apt_configure
        r["ci_total"] = total
        r["tool_status"] = next((l.split(": ", 1)[1] for l in m
                                 if l.startswith("CCVM-CI status:")), None)
    else:
        r["tool_units"] = r["apt"] = r["other_cmds"] = None
        r["tool_status"] = None
    return r


def med(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def f(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    path = sys.argv[1]
    header = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--header" else ""
    boots = [parse(json.loads(l)) for l in open(path) if l.strip()]
    series = []
    for b in boots:
        if b["series"] not in series:
            series.append(b["series"])
    by = {s: [b for b in boots if b["series"] == s] for s in series}
    for b in boots:
        units, apt, other = b.get("tool_units"), b.get("apt") or 0.0, b.get("other_cmds") or 0.0
        b["own"] = None if units is None else units - apt - other
    keys = ["marker", "exit", "uptime", "kernel", "userspace", "tool_units", "apt", "other_cmds", "own"]
    medians = {s: {k: med([b.get(k) for b in by[s]]) for k in keys} for s in series}
    bare = medians.get("bare", {})

    out = [header] if header else []
    out.append("## Medians\n")
    out.append(f"{len(boots)} boots; medians per series (n = boots). Seconds. `marker` = host wall time from "
               "QEMU start to the CCVM-DONE serial line (printed as soon as `systemctl is-system-running "
               "--wait` returns: boot transaction over, configuration done); `uptime` = guest uptime "
               "then; `tool units` = `systemd-analyze blame` of cloudcfg.service, or the sum of "
               "cloud-init's four units; `apt` = apt-get's own time (cloudcfg: durations of its apt-get "
               "commands in /var/log/cloudcfg.log; cloud-init: the package-update-upgrade-install module "
               "in `cloud-init analyze blame`); `other cmds` = cloudcfg's other commands "
               "(debconf-set-selections), for cloud-init its whole apt-configure module (debconf-set-selections, "
               "gpg and the `apt-get update` after adding sources, which it does not time apart, plus its Python "
               "work there); `own` = tool units - apt - other cmds: the "
               "tool's own time (for cloud-init a lower bound).\n")
    out.append("| series | n | marker | qemu exit | uptime | kernel | userspace | tool units | apt | other cmds | own | states |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in series:
        md = medians[s]
        states = sorted({f"{b.get('state')}/{b.get('tool_status') or '-'}" for b in by[s]})
        out.append(f"| {s} | {len(by[s])} | {f(md['marker'])} | {f(md['exit'])} | {f(md['uptime'])} | "
                   f"{f(md['kernel'])} | {f(md['userspace'])} | {f(md['tool_units'])} | {f(md['apt'])} | "
                   f"{f(md['other_cmds'])} | {f(md['own'])} | {', '.join(states)} |")

    out.append("\n## Overhead over the bare boot (medians)\n")
    out.append("`wall` = marker(series) - marker(bare); `guest` = uptime(series) - uptime(bare); "
               "`wall - apt` = the overhead with apt-get's own time taken out; `guest - cmds` = guest "
               "overhead minus apt and other cmds (the commands both tools run taken out on both sides); "
               "`units - apt` = the tool's units minus apt-get's time.\n")
    out.append("| series | wall | guest | wall - apt | guest - cmds | units - apt |")
    out.append("|---|---|---|---|---|---|")
    over = {}
    for s in series:
        if s == "bare":
            continue
        md = medians[s]
        wall = md["marker"] - bare["marker"] if md["marker"] is not None and bare.get("marker") is not None else None
        guest = md["uptime"] - bare["uptime"] if md["uptime"] is not None and bare.get("uptime") is not None else None
        apt = md["apt"] or 0.0
        units = md["tool_units"] - apt if md["tool_units"] is not None else None
        cmds = None if guest is None else guest - apt - (md["other_cmds"] or 0.0)
        over[s] = (wall, guest, None if wall is None else wall - apt, units, cmds)
        out.append(f"| {s} | {f(wall)} | {f(guest)} | {f(over[s][2])} | {f(cmds)} | {f(units)} |")

    out.append("\n## cloudcfg's overhead as a share of cloud-init's (target: < 10 % without packages)\n")
    out.append("| config | guest uptime over bare | wall over bare | wall - apt | guest - cmds | own time (medians) |")
    out.append("|---|---|---|---|---|---|")
    pct = lambda a, b: "-" if a is None or not b else f"{100 * a / b:.0f} %"
    for cfg in ("conf", "nopkg", "pkg"):
        a, b = over.get(f"cloudcfg-{cfg}"), over.get(f"cloud-init-{cfg}")
        ma, mb = medians.get(f"cloudcfg-{cfg}"), medians.get(f"cloud-init-{cfg}")
        if a and b:
            out.append(f"| {cfg} | {pct(a[1], b[1])} | {pct(a[0], b[0])} | {pct(a[2], b[2])} | {pct(a[4], b[4])} | "
                       f"{pct(ma['own'], mb['own'])} ({f(ma['own'])} s vs {f(mb['own'])} s) |")

    out.append("\n## Every boot\n")
    out.append("| series | round | load | marker | qemu exit | uptime | kernel | userspace | tool units | apt | other cmds | own | state | tool status |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in boots:
        out.append(f"| {b['series']} | {b['round']} | {b.get('load', '-')} | {f(b.get('marker'))} | {f(b.get('exit'))} | "
                   f"{f(b.get('uptime'))} | {f(b.get('kernel'))} | {f(b.get('userspace'))} | "
                   f"{f(b.get('tool_units'))} | {f(b.get('apt'))} | {f(b.get('other_cmds'))} | {f(b.get('own'))} | "
                   f"{b.get('state')} | {b.get('tool_status') or '-'} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
