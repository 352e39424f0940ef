//! Ports on 127.0.0.1 for the servers the tests start in the foreground.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// A port the kernel just handed out, for a server that must be told its port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`, failing the test after `within`.
pub fn wait_listening(port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
