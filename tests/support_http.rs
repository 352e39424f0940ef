//! Tests of the test HTTP server in tests/support/http.rs, with hand-written requests over
//! std::net::TcpStream (no HTTP client involved, so the server is checked on its own).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::http::{self, Request, Response};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` as is and reads the whole reply (the server closes the connection).
fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).expect("write request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read reply");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8(buf[..split].to_vec()).expect("head is UTF-8");
    let body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    send(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: t\r\n\r\n").as_bytes(),
    )
}

/// A fresh directory under the system temp dir: `<tmp>/<name>/root/...` holds the served files and
/// `<tmp>/<name>/secret` lies outside the root.
fn fixture_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cloudcfg-support-http-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root/debian/dists/bookworm")).unwrap();
    std::fs::write(
        dir.join("root/debian/dists/bookworm/InRelease"),
        b"signed release\n",
    )
    .unwrap();
    std::fs::write(dir.join("root/a b.txt"), b"space\n").unwrap();
    std::fs::write(dir.join("secret"), b"outside the root\n").unwrap();
    dir
}

const FPR_A: &str = "897FB1D86845F884F32374A8B54F83BA163D7715";
const FPR_B: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
const KEY_A: &str =
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nkey A\n-----END PGP PUBLIC KEY BLOCK-----\n";
const KEY_B: &str =
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nkey B\n-----END PGP PUBLIC KEY BLOCK-----\n";

fn keyserver() -> http::Server {
    // fingerprint B given the way people write it: spaces, 0x, lower case
    let b = "0x0123 4567 89ab cdef 0123  4567 89ab cdef 0123 4567".to_string();
    http::serve(http::or_not_found(http::hkp(vec![
        (FPR_A.to_string(), KEY_A.to_string()),
        (b, KEY_B.to_string()),
    ])))
}

#[test]
fn static_file_is_served_with_content_length() {
    let dir = fixture_dir("static");
    let server = http::serve(http::static_files(dir.join("root")));
    let r = get(server.addr, "/debian/dists/bookworm/InRelease");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"signed release\n");
    assert_eq!(r.header("Content-Length"), Some("15"));
    assert_eq!(r.header("Connection"), Some("close"));

    // percent-encoded path
    let r = get(server.addr, "/a%20b.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"space\n"[..]));

    // HEAD: same length, no body
    let r = send(
        server.addr,
        b"HEAD /debian/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("15"));
    assert!(r.body.is_empty());

    // a client talking to a proxy sends the absolute form
    let r = get(
        server.addr,
        "http://deb.debian.org/debian/dists/bookworm/InRelease",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        server.requests()[3].path,
        "/debian/dists/bookworm/InRelease"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_file_and_directory_are_404() {
    let dir = fixture_dir("missing");
    let server = http::serve(http::static_files(dir.join("root")));
    assert_eq!(
        get(server.addr, "/debian/dists/bookworm/Release").status,
        404
    );
    assert_eq!(get(server.addr, "/debian/dists").status, 404);
    assert_eq!(get(server.addr, "/").status, 404);
    let r = send(
        server.addr,
        b"PUT /a%20b.txt HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dot_dot_is_refused() {
    let dir = fixture_dir("dotdot");
    let server = http::serve(http::static_files(dir.join("root")));
    for target in [
        "/../secret",
        "/debian/../../secret",
        "/%2e%2e/secret",
        "/debian/%2E%2E/%2E%2E/secret",
    ] {
        let r = get(server.addr, target);
        assert_eq!(r.status, 403, "{target}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("outside"),
            "{target}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hkp_finds_keys_by_8_16_and_40_digit_ids() {
    let server = keyserver();
    for search in [
        "0x163D7715",
        "163d7715",
        "0xB54F83BA163D7715",
        "0xb54f83ba163d7715",
        "0x897FB1D86845F884F32374A8B54F83BA163D7715",
        "897fb1d86845f884f32374a8b54f83ba163d7715",
    ] {
        let r = get(
            server.addr,
            &format!("/pks/lookup?op=get&options=mr&search={search}"),
        );
        assert_eq!(r.status, 200, "{search}");
        assert_eq!(
            r.header("Content-Type"),
            Some("application/pgp-keys"),
            "{search}"
        );
        assert_eq!(r.body, KEY_A.as_bytes(), "{search}");
    }
    // the key registered with a spaced, lower-case fingerprint
    for search in ["0x89ABCDEF01234567", FPR_B] {
        let r = get(
            server.addr,
            &format!("/pks/lookup?op=get&options=mr&search={search}"),
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, KEY_B.as_bytes()),
            "{search}"
        );
    }
    // a fingerprint given with spaces, percent-encoded, as a space-separated search
    let r = get(
        server.addr,
        "/pks/lookup?op=get&options=mr&search=897F+B1D8+6845+F884+F323++74A8+B54F+83BA+163D+7715",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn hkp_unknown_and_invalid_lookups() {
    let server = keyserver();
    // unknown id
    assert_eq!(
        get(
            server.addr,
            "/pks/lookup?op=get&options=mr&search=0xDEADBEEF"
        )
        .status,
        404
    );
    // a suffix of the fingerprint that is no key-id length
    assert_eq!(
        get(server.addr, "/pks/lookup?op=get&search=0x3D7715").status,
        400
    );
    assert_eq!(
        get(server.addr, "/pks/lookup?op=get&search=0xNOTHEX00").status,
        400
    );
    assert_eq!(get(server.addr, "/pks/lookup?op=get").status, 400);
    assert_eq!(
        get(server.addr, "/pks/lookup?op=index&search=0x163D7715").status,
        501
    );
    // not a keyserver path: or_not_found
    assert_eq!(
        get(server.addr, "/debian/dists/bookworm/InRelease").status,
        404
    );
}

#[test]
fn hkp_and_static_files_share_one_server() {
    let dir = fixture_dir("combined");
    let server = http::serve(http::or_else(
        http::hkp(vec![(FPR_A.to_string(), KEY_A.to_string())]),
        http::static_files(dir.join("root")),
    ));
    assert_eq!(
        get(
            server.addr,
            "/pks/lookup?op=get&options=mr&search=0x163D7715"
        )
        .status,
        200
    );
    assert_eq!(
        get(
            server.addr,
            "/pks/lookup?op=get&options=mr&search=0x00000000"
        )
        .status,
        404
    );
    assert_eq!(
        get(server.addr, "/debian/dists/bookworm/InRelease").status,
        200
    );
    assert_eq!(server.count("/pks/lookup"), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn requests_are_recorded_and_counted() {
    let server = http::serve(
        |req: &Request| match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token") => {
                Response::ok("TOKEN").with_header("Content-Type", "text/plain")
            }
            ("GET", "/latest/meta-data/instance-id") => Response::ok("i-0abc"),
            ("POST", "/echo") => Response::ok(req.body.clone()),
            _ => Response::not_found(),
        },
    );
    let addr = server.addr;
    let r = send(
        addr,
        b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"TOKEN"[..]));
    for _ in 0..3 {
        assert_eq!(get(addr, "/latest/meta-data/instance-id").body, b"i-0abc");
    }
    assert_eq!(get(addr, "/nothing?x=1&y=a%2Fb+c&flag").status, 404);
    let r = send(
        addr,
        b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.body, b"hello");
    let r = send(
        addr,
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(r.body, b"abcde");

    assert_eq!(server.count("/latest/api/token"), 1);
    assert_eq!(server.count("/latest/meta-data/instance-id"), 3);
    assert_eq!(server.count("/echo"), 2);
    assert_eq!(server.count_where(|r| r.method == "GET"), 4);
    let all = server.requests();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].method, "PUT");
    assert_eq!(
        all[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert!(all[0].body.is_empty());
    let q = &all[4];
    assert_eq!(q.target, "/nothing?x=1&y=a%2Fb+c&flag");
    assert_eq!(q.query_param("x"), Some("1"));
    assert_eq!(q.query_param("y"), Some("a/b c"));
    assert_eq!(q.query_param("flag"), Some(""));
    assert_eq!(all[5].body, b"hello");
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[test]
fn sequence_fails_then_succeeds() {
    let server = http::serve(http::sequence(vec![
        Response::status(503),
        Response::status(503).with_header("Retry-After", "0"),
        Response::ok("third"),
    ]));
    let statuses: Vec<u16> = (0..4).map(|_| get(server.addr, "/x").status).collect();
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(server.count("/x"), 4);
}

#[test]
fn a_panicking_handler_answers_500() {
    let server =
        http::serve(|_: &Request| -> Response { panic!("deliberate panic in a test handler") });
    assert_eq!(get(server.addr, "/").status, 500);
    assert_eq!(server.count("/"), 1);
}

#[test]
fn malformed_request_is_400_and_the_server_keeps_going() {
    let server = http::serve(|_: &Request| Response::ok("fine"));
    assert_eq!(send(server.addr, b"NONSENSE\r\n\r\n").status, 400);
    assert_eq!(get(server.addr, "/").status, 200);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn dropping_the_server_closes_the_port() {
    let server = http::serve(|_: &Request| Response::ok("up"));
    let addr = server.addr;
    assert_eq!(get(addr, "/").status, 200);
    let t = std::time::Instant::now();
    drop(server);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}
