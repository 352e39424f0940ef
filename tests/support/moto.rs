//! moto's S3 server (PyPI `moto[server]`, installed by scripts/test.sh into the e2e cache) on
//! 127.0.0.1, for the autosign S3 store: started in the foreground, stopped by PID on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The bucket the tests create.
pub const BUCKET: &str = "ca-expect";

pub fn moto_server() -> Option<PathBuf> {
    let path = std::env::var_os("CLOUDCFG_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root::cache_dir().join("moto-venv/bin/moto_server"));
    path.exists().then_some(path)
}

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start(server: &Path) -> Moto {
        let port = super::net::free_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs");
        super::net::wait_listening(port, "moto_server", Duration::from_secs(30));
        Moto { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the bucket with boto3 (moto's own dependency), as an operator would.
    pub fn create_bucket(&self, server: &Path) {
        self.boto3(server, &format!("create_bucket(Bucket='{BUCKET}')"));
    }

    /// Puts an object directly, as another CA replica's claim would.
    pub fn put(&self, server: &Path, key: &str) {
        self.boto3(
            server,
            &format!("put_object(Bucket='{BUCKET}', Key='{key}', Body=b'claimed')"),
        );
    }

    /// One call of boto3's S3 client against this server, with the test's credentials.
    fn boto3(&self, server: &Path, call: &str) {
        let python = server.with_file_name("python");
        let out = Command::new(python)
            .args([
                "-c",
                &format!(
                    "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
                     aws_access_key_id='testing', aws_secret_access_key='testing').{call}",
                    self.url()
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
