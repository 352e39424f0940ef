#!/usr/bin/env python3
"""Boot one image of tests/vm/build-image.sh under QEMU and time its serial console.

usage: bootvm.py IMAGE_DIR LOG [--overlay FILE] [--cdrom ISO] [--fwd IP:PORT=HOSTPORT]...
                 [--smbios SPEC] [--append ARGS] [--smp N] [--mem MB] [--timeout S]

Boots IMAGE_DIR/{vmlinuz,initrd.img} with a qcow2 overlay of IMAGE_DIR/base.img (a new throw-away
one unless --overlay names one to create or reuse), always on a restricted link-local user network
(`restrict=on`: the guest reaches nothing but the --fwd relays, each to 127.0.0.1:HOSTPORT through
tests/vm/fwd.py). Writes every serial line to LOG with host seconds since QEMU started, and prints
one JSON line: {"marker": s to CCVM-DONE, "end": s to CCVM-END, "exit": s to QEMU's exit, "rc"}.
Accelerator: TCG (-cpu max) when /dev/kvm is PVM (/sys/module/kvm_pvm) or the CPU has no vmx/svm
(see shared/spec/vm-notes.md), else KVM (-cpu host). QEMU is killed at --timeout.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FWD = os.path.join(HERE, "..", "..", "tests", "vm", "fwd.py")


def accel():
    if os.path.isdir("/sys/module/kvm_pvm") or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-machine", "pc,accel=tcg", "-cpu", "max"]
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    if " vmx" not in flags and " svm" not in flags:
        return ["-machine", "pc,accel=tcg", "-cpu", "max"]
    return ["-machine", "pc,accel=kvm", "-cpu", "host"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("log")
    ap.add_argument("--overlay")
    ap.add_argument("--cdrom")
    ap.add_argument("--fwd", action="append", default=[])
    ap.add_argument("--smbios")
    ap.add_argument("--append", default="")
    ap.add_argument("--smp", default="2")
    ap.add_argument("--mem", default="1024")
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()

    img = os.path.abspath(a.image)
    tmp = None
    overlay = a.overlay
    if overlay is None:
        tmp = tempfile.mkdtemp(prefix="bootvm-", dir="/var/tmp")
        overlay = os.path.join(tmp, "overlay.qcow2")
    if not os.path.exists(overlay):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                        os.path.join(img, "base.img"), "-F", "raw", overlay], check=True)
    net = "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.1"
    for f in a.fwd:
        guest, port = f.split("=")
        net += f",guestfwd=tcp:{guest}-cmd:/usr/bin/python3 {os.path.abspath(FWD)} 127.0.0.1 {int(port)}"
    cmd = ["qemu-system-x86_64"] + accel() + [
        "-smp", a.smp, "-m", a.mem, "-display", "none", "-monitor", "none",
        "-serial", "stdio", "-no-reboot",
        "-kernel", os.path.join(img, "vmlinuz"), "-initrd", os.path.join(img, "initrd.img"),
        "-append", ("root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 " + a.append).strip(),
        "-drive", f"file={overlay},if=virtio,format=qcow2",
        "-netdev", net, "-device", "virtio-net-pci,netdev=n0"]
    if a.cdrom:
        cmd += ["-drive", f"file={os.path.abspath(a.cdrom)},media=cdrom,readonly=on"]
    if a.smbios:
        cmd += ["-smbios", a.smbios]

    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    timer = threading.Timer(a.timeout, p.kill)
    timer.start()
    marker = end = None
    try:
        with open(a.log, "w") as log:
            log.write("# " + " ".join(cmd) + "\n")
            for raw in p.stdout:
                t = time.monotonic() - t0
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                log.write(f"[{t:8.3f}] {line}\n")
                log.flush()
                if marker is None and "CCVM-DONE" in line:
                    marker = t
                if end is None and "CCVM-END" in line:
                    end = t
        rc = p.wait()
    finally:
        timer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    t_exit = time.monotonic() - t0
    print(json.dumps({"marker": marker, "end": end, "exit": round(t_exit, 3), "rc": rc}))
    return 0 if marker is not None else 1


if __name__ == "__main__":
    sys.exit(main())
