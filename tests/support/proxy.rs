//! Debian's tinyproxy on 127.0.0.1 in the foreground, for the tests of key fetches through
//! apt's proxy: it adds `Via: 1.1 tinyproxy` to what it forwards and logs every request, so a
//! test can tell proxied requests from ones that bypassed it.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TinyProxy {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TinyProxy {
    pub fn start() -> TinyProxy {
        let dir = tempfile::tempdir().unwrap();
        // tinyproxy takes a fixed port: ask the kernel for a free one first.
        let port = super::net::free_port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy runs");
        // Ready when it accepts connections (bounded: a broken proxy fails the test in 10 s).
        super::net::wait_listening(port, "tinyproxy", Duration::from_secs(10));
        TinyProxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests tinyproxy logged (`GET http://...`, `CONNECT host:port`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("): ").map(|(_, r)| r.to_owned()))
            .filter(|r| r.starts_with("GET ") || r.starts_with("CONNECT "))
            .collect()
    }
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
