//! Starting the real `k2` binary for tests, and speaking raw HTTP/1.1 to it (raw, so requests
//! can carry what clients normally refuse to send: `..` paths, oversize bodies).

#![allow(dead_code)]

pub mod gguf_patch;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789";

pub fn model_path(file: &str) -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join(file);
    assert!(path.exists(), "run scripts/fetch-test-models.sh first");
    path
}

pub fn smollm() -> PathBuf {
    model_path("smollm2-135m-instruct-q4_1.gguf")
}

pub fn k2() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k2"))
}

/// Adds `name` to the class roster at `roster` with `k2 serve roster add`; returns the token
/// it printed.
pub fn roster_add(roster: &Path, name: &str) -> String {
    let out = k2()
        .args(["serve", "roster", "add", name, "--roster"])
        .arg(roster)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 32, "a fresh 128-bit token: {token}");
    token
}

/// A class on a running `k2 serve`: a real roster of two students, alice and bob, written by
/// `k2 serve roster add`, and a real session database.
pub struct Class {
    pub server: Server,
    pub roster: PathBuf,
    pub alice: String,
    pub bob: String,
    _dir: tempfile::TempDir,
}

/// Starts a class on a server started with `extra` flags.
pub fn start_class(extra: &[&str]) -> Class {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.toml");
    let alice = roster_add(&roster, "alice");
    let bob = roster_add(&roster, "bob");
    let db = dir.path().join("class.db");
    let mut args = vec![
        "--db",
        db.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Class {
        server: Server::start(&args),
        roster,
        alice,
        bob,
        _dir: dir,
    }
}

/// The header that sends `token`.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// A running `k2 serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
}

impl Server {
    /// Starts `k2 serve` on a free port with `extra` flags and waits until it listens.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with_model(&smollm(), extra)
    }

    /// [`Server::start`] serving the model at `model`.
    pub fn start_with_model(model: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = k2()
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args(["--port", "0", "--token", TOKEN])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("k2 starts");
        let stderr = child.stderr.take().unwrap();
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.split("at http://").nth(1) {
                    if let Some(sender) = found.take() {
                        let _ = sender.send(at.trim().to_owned());
                    }
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .expect("k2 serve prints its address");
        Server {
            child,
            address: address.parse().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn health(&self) -> serde_json::Value {
        let response = request(self.address, "GET", "/health", &[], b"");
        assert_eq!(response.status, 200);
        serde_json::from_slice(&response.body).unwrap()
    }

    /// Waits until `/health` satisfies `ready`.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.health();
            if ready(&health) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {health}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

/// One HTTP/1.1 request on its own connection; reads the whole answer (the server closes).
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write_request(&mut stream, method, path, headers, body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn write_request(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading an oversize body and close the connection.
    let _ = stream.write_all(body);
}

pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break;
        };
        if size == 0 || data.len() < end + 2 + size {
            out.extend_from_slice(&data[(end + 2).min(data.len())..]);
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

pub fn chat_body(content: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = serde_json::json!({
        "messages": [{"role": "user", "content": content}],
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&body).unwrap()
}
