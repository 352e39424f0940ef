//! A tiny HTTP/1.1 server for integration tests: std only, one thread per connection, one request
//! per connection (`Connection: close`), bound to `127.0.0.1:0`, stopped when dropped.
//!
//! ```ignore
//! mod support;
//! use support::http::{self, Response};
//!
//! let imds = http::serve(|req| match (req.method.as_str(), req.path.as_str()) {
//!     ("PUT", "/latest/api/token") => Response::ok("TOKEN"),
//!     ("GET", "/latest/meta-data/instance-id") => Response::ok("i-0abc"),
//!     _ => Response::not_found(),
//! });
//! // ... point cloudcfg at imds.url() ...
//! assert_eq!(imds.count("/latest/api/token"), 1);
//!
//! // a signed apt repository (tests/e2e/make-repo.sh) and a keyserver on one port:
//! let server = http::serve(http::or_else(http::hkp(keys), http::static_files(outdir.join("repo"))));
//! ```
//!
//! What the server does for every handler: parses the request line, headers, query string and a
//! `Content-Length` or chunked body (answering `Expect: 100-continue`); records the request before
//! calling the handler (so a retry policy can be checked with [`Server::count`]); answers a panicking
//! handler with 500; adds `Content-Length` (unless the handler set one) and `Connection: close`; sends
//! no body for `HEAD`, 1xx, 204 and 304; then closes gracefully (half-close, then drains what the
//! client still sends, so a pipelining client such as apt gets the response instead of a reset).

// Each integration test file compiles this module as part of its own crate and uses only some of
// the helpers; without this every test binary would warn about the helpers it does not use.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Read/write timeout of a connection, so a stuck client cannot keep a thread forever.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// One parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `PUT`, ... as sent.
    pub method: String,
    /// The request-target as sent: `/a%20b?x=1`, or `http://host/path` from a client talking to a proxy.
    pub target: String,
    /// The percent-decoded path of the target, without scheme, authority or query: `/a b`.
    pub path: String,
    /// Query parameters in order, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// Header names as sent (compare with [`Request::header`], which ignores case), values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` or chunked), empty when there is none.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The first query parameter of that name (exact match).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send. `Content-Length` and `Connection: close` are added when writing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// 200 with this body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// This status, empty body.
    pub fn status(code: u16) -> Response {
        Response {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 404 with a short text body.
    pub fn not_found() -> Response {
        Response::status(404).with_body("not found\n")
    }

    /// Adds a header (no check for duplicates).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first header of that name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync + 'static;

/// A running server. Dropping it stops accepting (new connections are refused) and joins the
/// accept thread; connections already accepted finish on their own threads.
pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// Starts a server on `127.0.0.1:0` that answers every request with `handler`.
pub fn serve(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("test http server: bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("test http server: local_addr");
    let handler: Arc<Handler> = Arc::new(handler);
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let accept = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        thread::Builder::new()
            .name(format!("test-http-{}", addr.port()))
            .spawn(move || accept_loop(listener, handler, log, stop))
            .expect("test http server: spawn accept thread")
    };
    Server {
        addr,
        log,
        stop,
        accept: Some(accept),
    }
}

impl Server {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in arrival order (recorded before the handler ran).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.log).clone()
    }

    /// How many requests had exactly this (decoded) path, any method.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.log).iter().filter(|r| r.path == path).count()
    }

    /// How many requests match `pred`.
    pub fn count_where(&self, pred: impl Fn(&Request) -> bool) -> usize {
        lock(&self.log).iter().filter(|r| pred(r)).count()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    /// Stops the server now (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); the loop sees the flag and returns, dropping the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(stream) => {
                let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
                let spawned = thread::Builder::new()
                    .name("test-http-conn".into())
                    .spawn(move || handle_connection(stream, &*handler, &log));
                if spawned.is_err() {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            // EMFILE and friends: do not spin.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle_connection(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let request = match read_request(&mut reader, &mut writer) {
        Ok(Some(r)) => r,
        Ok(None) => return, // closed without a request (e.g. the wake-up connection of Drop)
        Err(e) => {
            let resp = Response::status(400).with_body(format!("bad request: {e}\n"));
            let _ = write_response(&mut writer, "GET", &resp);
            linger_close(writer, reader);
            return;
        }
    };
    lock(log).push(request.clone());
    let response = catch_unwind(AssertUnwindSafe(|| handler(&request)))
        .unwrap_or_else(|_| Response::status(500).with_body("test handler panicked\n"));
    let _ = write_response(&mut writer, &request.method, &response);
    linger_close(writer, reader);
}

/// Half-closes, then reads until the client closes (or `LINGER` passes), so that unread request
/// bytes (pipelined requests) do not make the kernel answer with a reset that destroys the response.
fn linger_close(mut stream: TcpStream, mut reader: BufReader<TcpStream>) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut buf = [0u8; 8192];
    let mut total = 0usize;
    while total < (4 << 20) {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one line including its `\n`, failing past `limit` bytes. Ok(empty) at end of stream.
fn read_line(r: &mut impl BufRead, limit: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.take(limit as u64 + 1).read_until(b'\n', &mut line)?;
    if line.len() > limit {
        return Err(invalid("line too long"));
    }
    Ok(line)
}

fn trim_eol(mut line: Vec<u8>) -> Vec<u8> {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    line
}

fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEAD;
    // request line (tolerate empty lines before it, RFC 9112 2.2)
    let line = loop {
        let raw = read_line(r, budget)?;
        if raw.is_empty() {
            return Ok(None);
        }
        budget = budget.saturating_sub(raw.len());
        let line = trim_eol(raw);
        if !line.is_empty() {
            break String::from_utf8(line).map_err(|_| invalid("request line is not UTF-8"))?;
        }
    };
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("malformed request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let raw = read_line(r, budget)?;
        if raw.is_empty() {
            return Err(invalid("connection closed inside the request head"));
        }
        budget = budget.saturating_sub(raw.len());
        let line = trim_eol(raw);
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("malformed header {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }

    let (path, query) = split_target(target);
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
    };

    if request
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let chunked = request
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(r)?;
    } else if let Some(len) = request.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| invalid("bad Content-Length"))?;
        if len > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = String::from_utf8_lossy(&trim_eol(read_line(r, 1024)?)).into_owned();
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // trailers, up to the empty line
            loop {
                let t = read_line(r, MAX_HEAD)?;
                if t.is_empty() || trim_eol(t).is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let crlf = read_line(r, 2)?;
        if !trim_eol(crlf).is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

/// `/p%20q?a=1&b` → (`/p q`, [(a, 1), (b, "")]); an absolute-form target loses scheme and authority.
fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let mut t = target;
    for scheme in ["http://", "https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            t = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
        }
    }
    let t = t.split('#').next().unwrap_or("");
    let (raw_path, raw_query) = t.split_once('?').unwrap_or((t, ""));
    let mut path = percent_decode(raw_path, false);
    if path.is_empty() {
        path.push('/');
    }
    let query = raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    (path, query)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_response(w: &mut impl Write, method: &str, resp: &Response) -> io::Result<()> {
    let bodiless_status = resp.status < 200 || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if resp.header("Content-Length").is_none() && !bodiless_status {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if resp.header("Connection").is_none() {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !method.eq_ignore_ascii_case("HEAD") && !bodiless_status {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Serves the files under `root` for GET and HEAD: `/a/b` is `root/a/b`. A path with a `..`
/// component (also percent-encoded) gets 403; a missing file or a directory gets 404; other
/// methods get 405. Symbolic links are followed (test fixtures are trusted).
pub fn static_files(
    root: impl Into<PathBuf>,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    let root = root.into();
    move |req| serve_file(&root, req)
}

fn serve_file(root: &Path, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::status(405).with_header("Allow", "GET, HEAD");
    }
    let mut file = root.to_path_buf();
    for part in req.path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Response::status(403).with_body("'..' refused\n"),
            p if p.contains(['\\', '\0']) => return Response::status(403).with_body("refused\n"),
            p => file.push(p),
        }
    }
    if !file.is_file() {
        return Response::not_found();
    }
    match std::fs::read(&file) {
        Ok(body) => Response::ok(body).with_header("Content-Type", content_type(&file)),
        Err(e) => Response::status(500).with_body(format!("{}: {e}\n", file.display())),
    }
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("asc") => "application/pgp-keys",
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("deb") => "application/vnd.debian.binary-package",
        Some("json") => "application/json",
        Some("txt" | "yaml" | "yml") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// An HKP keyserver (`/pks/lookup`), as `gpg --recv-keys` and cloudcfg use it.
///
/// `keys` are (fingerprint, armored key) pairs. The fingerprint is only the lookup index: pairing
/// one key's fingerprint with another key's armor makes a keyserver that answers with the wrong key
/// (for the "fetched key does not match the keyid" tests). Fingerprints may be given with spaces,
/// a `0x` prefix and in any case.
///
/// `GET /pks/lookup?op=get&options=mr&search=0xKEYID`: KEYID is 8, 16 or 40 hex digits, any case,
/// with or without `0x`, and matches every fingerprint that ends with it. Found: 200,
/// `Content-Type: application/pgp-keys`, the armored keys of all matches concatenated. Not found:
/// 404. A `search` that is no such key id: 400. Another `op` (e.g. `index`): 501. Other paths: None,
/// so that [`or_else`] can pass them on.
pub fn hkp(
    keys: Vec<(String, String)>,
) -> impl Fn(&Request) -> Option<Response> + Send + Sync + 'static {
    let keys: Vec<(String, String)> = keys
        .into_iter()
        .map(|(f, k)| (normalize_keyid(&f), k))
        .collect();
    move |req| (req.path == "/pks/lookup").then(|| hkp_lookup(&keys, req))
}

fn normalize_keyid(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(&s);
    s.to_ascii_uppercase()
}

fn hkp_lookup(keys: &[(String, String)], req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::status(405).with_header("Allow", "GET, HEAD");
    }
    match req.query_param("op") {
        Some("get") => {}
        Some(_) => return Response::status(501).with_body("only op=get is implemented\n"),
        None => return Response::status(400).with_body("missing op\n"),
    }
    let Some(search) = req.query_param("search") else {
        return Response::status(400).with_body("missing search\n");
    };
    let id = normalize_keyid(search);
    if !matches!(id.len(), 8 | 16 | 40) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Response::status(400).with_body(format!("not a key id: {search}\n"));
    }
    let mut body = String::new();
    for (_, armored) in keys.iter().filter(|(f, _)| f.ends_with(&id)) {
        body.push_str(armored);
        if !armored.ends_with('\n') {
            body.push('\n');
        }
    }
    if body.is_empty() {
        return Response::not_found().with_body("No results found\n");
    }
    Response::ok(body).with_header("Content-Type", "application/pgp-keys")
}

/// Reads a key made by tests/e2e/make-repo.sh: (`fingerprint` file, `key.asc` file) → the pair
/// [`hkp`] wants, e.g. `hkp_key(&out.join("fingerprint"), &out.join("key.asc"))`.
pub fn hkp_key(fingerprint_file: &Path, armored_file: &Path) -> (String, String) {
    let read = |p: &Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    };
    (
        read(fingerprint_file).trim().to_string(),
        read(armored_file),
    )
}

/// `first`, and where it answers None, `fallback`: `or_else(hkp(keys), static_files(root))`.
pub fn or_else<A, B>(first: A, fallback: B) -> impl Fn(&Request) -> Response + Send + Sync + 'static
where
    A: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    B: Fn(&Request) -> Response + Send + Sync + 'static,
{
    move |req| first(req).unwrap_or_else(|| fallback(req))
}

/// `handler`, and 404 where it answers None: `serve(or_not_found(hkp(keys)))` is a keyserver.
pub fn or_not_found<A>(handler: A) -> impl Fn(&Request) -> Response + Send + Sync + 'static
where
    A: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    move |req| handler(req).unwrap_or_else(Response::not_found)
}

/// Answers the n-th request (any path) with `responses[n]`, and every request after the last one
/// with the last one: `sequence(vec![Response::status(503), Response::status(503), Response::ok("x")])`
/// fails twice, then succeeds. Panics when `responses` is empty.
pub fn sequence(responses: Vec<Response>) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    assert!(
        !responses.is_empty(),
        "sequence needs at least one response"
    );
    let next = AtomicUsize::new(0);
    move |_| {
        let i = next.fetch_add(1, Ordering::SeqCst).min(responses.len() - 1);
        responses[i].clone()
    }
}
