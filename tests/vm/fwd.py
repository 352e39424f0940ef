#!/usr/bin/env python3
"""stdin/stdout <-> TCP relay for QEMU's user network:

    -netdev user,restrict=on,...,guestfwd=tcp:GUEST_IP:GUEST_PORT-cmd:python3 fwd.py HOST PORT

QEMU starts one relay per guest connection (the `-cmd:` form; the `-tcp:` form opens a single
connection at start-up and hangs on the guest's second request), with the guest's byte stream on
stdin/stdout. The relay connects to HOST:PORT (the tests use 127.0.0.1 only) and copies both ways
until the server closes. See ../../../shared/spec/vm-notes.md, "Step 2".
"""
import os
import selectors
import socket
import sys

s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.settimeout(None)
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ)
sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj == 0:
            data = os.read(0, 65536)
            if not data:  # the guest half-closed: pass it on, keep reading the answer
                sel.unregister(0)
                s.shutdown(socket.SHUT_WR)
            else:
                s.sendall(data)
        else:
            data = s.recv(65536)
            if not data:
                sys.exit(0)
            while data:
                data = data[os.write(1, data):]
