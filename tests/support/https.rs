//! A real HTTPS server on 127.0.0.1 for key URLs: Python's http.server behind TLS, with a
//! certificate from a CA made for the test (openssl), so that trust is the test's choice.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct HttpsServer {
    child: Child,
    pub port: u16,
    /// The CA's certificate (PEM), for the client's trust store.
    pub ca_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl HttpsServer {
    /// Serves `files` (name, bytes) from a fresh directory.
    pub fn start(files: &[(&str, &[u8])]) -> HttpsServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = d.join("www");
        std::fs::create_dir(&root).unwrap();
        for (name, bytes) in files {
            std::fs::write(root.join(name), bytes).unwrap();
        }
        make_certs(d);
        let script = r#"
import http.server, ssl, sys, os
os.chdir(sys.argv[1])
httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(&root)
            .arg(d.join("server.pem"))
            .arg(d.join("server.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        HttpsServer {
            child,
            port,
            ca_pem: std::fs::read(d.join("ca.pem")).unwrap(),
            _dir: dir,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs openssl in `dir`, failing the test with its message.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cloudcfg test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A self-signed RSA signer `DIR/NAME.pem` (and `.key`), as AWS's per-region certificate
/// of instance identity documents is.
pub fn identity_signer(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// The PKCS#7 (DER) of `doc` by signer `name`, as EC2's `rsa2048` signs instance identity
/// documents (the document inside); `attrs: false` signs without signed attributes.
pub fn identity_signature(dir: &Path, name: &str, doc: &[u8], attrs: bool) -> Vec<u8> {
    std::fs::write(dir.join("doc.json"), doc).unwrap();
    let mut args = vec![
        "smime",
        "-sign",
        "-binary",
        "-nodetach",
        "-outform",
        "DER",
        "-md",
        "sha256",
        "-in",
        "doc.json",
        "-out",
        "sig.der",
    ];
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    args.extend(["-signer", &cert, "-inkey", &key]);
    if !attrs {
        args.push("-noattr");
    }
    openssl(dir, &args);
    std::fs::read(dir.join("sig.der")).unwrap()
}
