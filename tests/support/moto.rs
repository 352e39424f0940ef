//! moto's S3 server (PyPI `moto[server]`, installed by scripts/test.sh into the e2e cache) on
//! 127.0.0.1, for the autosign S3 store: started in the foreground, stopped by PID on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the bucket with boto3 (moto's own dependency), as an operator would.
    pub fn create_bucket(&self, server: &Path) {
        let python = server.with_file_name("python");
        let out = Command::new(python)
            .args([
                "-c",
                &format!(
                    "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
                     aws_access_key_id='testing', aws_secret_access_key='testing')\
                     .create_bucket(Bucket='{BUCKET}')",
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

    /// Puts an object directly, as another CA replica's claim would.
    pub fn put(&self, server: &Path, key: &str) {
        let python = server.with_file_name("python");
        let out = Command::new(python)
            .args([
                "-c",
                &format!(
                    "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
                     aws_access_key_id='testing', aws_secret_access_key='testing')\
                     .put_object(Bucket='{BUCKET}', Key='{key}', Body=b'claimed')",
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
