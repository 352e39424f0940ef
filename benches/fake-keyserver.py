#!/usr/bin/python3
"""A local stand-in for a keyserver, Launchpad's archive API and an apt repository, for the
apply benchmark (benches/apply.sh): 127.0.0.1 only, never the network.

usage: fake-keyserver.py PORT_FILE WEB_ROOT KEY.asc FINGERPRINT [PPA=owner/name ...]
Writes the port it listens on to PORT_FILE, then serves until killed."""
import http.server, json, os, sys, urllib.parse

port_file, web_root, key_file, fingerprint = sys.argv[1:5]
ppas = [a.split("=", 1)[1] for a in sys.argv[5:] if a.startswith("PPA=")]
key = open(key_file).read()

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=web_root, **kw)

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/pks/lookup":
            search = urllib.parse.parse_qs(url.query).get("search", [""])[0]
            wanted = search.removeprefix("0x").upper()
            if wanted and fingerprint.upper().endswith(wanted):
                return self.reply(200, key, "application/pgp-keys")
            return self.reply(404, "not found", "text/plain")
        for ppa in ppas:
            owner, name = ppa.split("/")
            if url.path == f"/~{owner}/+archive/ubuntu/{name}":
                return self.reply(200, json.dumps({"signing_key_fingerprint": fingerprint}), "application/json")
        return super().do_GET()

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
