//! Installing models for real: a local HTTP server stands in for Hugging Face (same URL
//! layout, Range requests, the `X-Linked-Etag` checksum header, connections that break) and
//! serves the real SmolLM2 GGUF; imports copy, link and refuse real files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k2_engine::decode::plain::CancelToken;
use k2_engine::error::EngineError;
use k2_engine::install::download::{download_model, HfFile};
use k2_engine::install::{import_model, sha256_file, ImportMode};

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";

fn real_model() -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join(SMOLLM2);
    assert!(path.exists(), "run scripts/fetch-test-models.sh first");
    path
}

/// How the stand-in server behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Close the first body after this many bytes.
    break_after: Option<usize>,
    /// Ignore Range headers (always 200 with the whole file).
    no_ranges: bool,
    /// The checksum advertised on HEAD.
    etag: Option<String>,
}

struct Hub {
    base: String,
    /// The Range header of each GET, in order.
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn hub(body: Arc<Vec<u8>>, path: &'static str, behaviour: Behaviour) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    let gets = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (body, behaviour, seen, gets) =
                (body.clone(), behaviour.clone(), seen.clone(), gets.clone());
            std::thread::spawn(move || serve(stream, &body, path, &behaviour, &seen, &gets));
        }
    });
    Hub { base, ranges }
}

fn serve(
    mut stream: TcpStream,
    body: &[u8],
    path: &str,
    behaviour: &Behaviour,
    seen: &Mutex<Vec<Option<String>>>,
    gets: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("range:") {
            range = Some(value.trim().to_owned());
        }
    }
    if target != path {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    if method == "HEAD" {
        let etag = behaviour
            .etag
            .as_ref()
            .map(|e| format!("x-linked-etag: \"{e}\"\r\n"))
            .unwrap_or_default();
        let head = format!("HTTP/1.1 302 Found\r\nlocation: {path}\r\n{etag}content-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        return;
    }
    seen.lock().unwrap().push(range.clone());
    let first = gets.fetch_add(1, Ordering::SeqCst) == 0;
    let from: usize = range
        .filter(|_| !behaviour.no_ranges)
        .and_then(|r| r.strip_prefix("bytes=")?.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let status = if from > 0 {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let part = &body[from..];
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
        part.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let sent = match behaviour.break_after {
        Some(n) if first => n.min(part.len()),
        _ => part.len(),
    };
    let _ = stream.write_all(&part[..sent]);
    let _ = stream.flush();
}

fn file(repo: &str, sha256: Option<String>) -> HfFile {
    HfFile {
        repo: repo.into(),
        file: SMOLLM2.into(),
        revision: String::new(),
        sha256,
    }
}

fn with_endpoint<T>(base: &str, f: impl FnOnce() -> T) -> T {
    // One test at a time touches the endpoint variable.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("HF_ENDPOINT", base);
    f()
}

fn real_bytes() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(real_model()).unwrap())
}

fn expected_sha() -> String {
    sha256_file(&real_model()).unwrap()
}

const PATH: &str =
    "/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q4_1.gguf";

#[test]
fn a_download_checked_against_the_published_checksum_installs_a_working_model() {
    let hub = hub(
        real_bytes(),
        PATH,
        Behaviour {
            etag: Some(expected_sha()),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    let info = with_endpoint(&hub.base, || {
        download_model(
            &file("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", None),
            dir.path(),
            &mut |done, total| reports.push((done, total)),
            &CancelToken::new(),
        )
    })
    .unwrap();
    assert_eq!(info.name, "smollm2-135m-instruct-q4_1");
    assert_eq!(info.architecture, "llama");
    let size = real_model().metadata().unwrap().len();
    assert_eq!(reports.last(), Some(&(size, Some(size))));
    assert!(
        reports.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress never goes back"
    );
    assert_eq!(
        sha256_file(&dir.path().join(SMOLLM2)).unwrap(),
        expected_sha()
    );
    assert!(!dir.path().join(format!("{SMOLLM2}.partial")).exists());
}

#[test]
fn a_broken_download_resumes_where_it_stopped() {
    let broken = Behaviour {
        break_after: Some(10_000_000),
        ..Default::default()
    };
    let hub = hub(real_bytes(), PATH, broken);
    let dir = tempfile::tempdir().unwrap();
    let wanted = file(
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        Some(expected_sha()),
    );
    let first = with_endpoint(&hub.base, || {
        download_model(&wanted, dir.path(), &mut |_, _| {}, &CancelToken::new())
    });
    let message = first.unwrap_err().to_string();
    assert!(message.contains("download again to resume"), "{message}");
    assert!(
        !dir.path().join(SMOLLM2).exists(),
        "nothing half-written under the name"
    );
    let partial = dir.path().join(format!("{SMOLLM2}.partial"));
    assert_eq!(partial.metadata().unwrap().len(), 10_000_000);

    with_endpoint(&hub.base, || {
        download_model(&wanted, dir.path(), &mut |_, _| {}, &CancelToken::new())
    })
    .unwrap();
    assert_eq!(
        *hub.ranges.lock().unwrap(),
        [None, Some("bytes=10000000-".to_owned())]
    );
    assert_eq!(
        sha256_file(&dir.path().join(SMOLLM2)).unwrap(),
        expected_sha()
    );
}

#[test]
fn a_server_without_ranges_restarts_the_download_from_the_start() {
    let hub = hub(
        real_bytes(),
        PATH,
        Behaviour {
            no_ranges: true,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("{SMOLLM2}.partial")),
        b"stale bytes",
    )
    .unwrap();
    with_endpoint(&hub.base, || {
        download_model(
            &file(
                "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                Some(expected_sha()),
            ),
            dir.path(),
            &mut |_, _| {},
            &CancelToken::new(),
        )
    })
    .unwrap();
    assert_eq!(
        sha256_file(&dir.path().join(SMOLLM2)).unwrap(),
        expected_sha()
    );
}

#[test]
fn a_wrong_checksum_a_missing_file_and_a_web_page_install_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub_real = hub(real_bytes(), PATH, Behaviour::default());
    let wrong = with_endpoint(&hub_real.base, || {
        download_model(
            &file(
                "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                Some("0".repeat(64)),
            ),
            dir.path(),
            &mut |_, _| {},
            &CancelToken::new(),
        )
    });
    assert!(
        matches!(wrong, Err(EngineError::ChecksumMismatch { .. })),
        "{wrong:?}"
    );
    // The checksum the hub publishes is checked too when none is given.
    let lying = hub(
        real_bytes(),
        PATH,
        Behaviour {
            etag: Some("1".repeat(64)),
            ..Default::default()
        },
    );
    let published = with_endpoint(&lying.base, || {
        download_model(
            &file("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", None),
            dir.path(),
            &mut |_, _| {},
            &CancelToken::new(),
        )
    });
    assert!(
        matches!(published, Err(EngineError::ChecksumMismatch { .. })),
        "{published:?}"
    );

    let missing = with_endpoint(&hub_real.base, || {
        download_model(
            &file("someone/else", None),
            dir.path(),
            &mut |_, _| {},
            &CancelToken::new(),
        )
    });
    let message = missing.unwrap_err().to_string();
    assert!(
        message.contains("404") && message.contains("check the repository"),
        "{message}"
    );

    let page = Arc::new(b"<!doctype html><title>Sign in</title>".repeat(100));
    let hub_page = hub(page, PATH, Behaviour::default());
    let not_a_model = with_endpoint(&hub_page.base, || {
        download_model(
            &file("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", None),
            dir.path(),
            &mut |_, _| {},
            &CancelToken::new(),
        )
    });
    let message = not_a_model.unwrap_err().to_string();
    assert!(message.contains("not a model"), "{message}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );

    let bad = HfFile {
        repo: "../../etc".into(),
        ..file("x/y", None)
    };
    assert!(matches!(
        download_model(&bad, dir.path(), &mut |_, _| {}, &CancelToken::new()),
        Err(EngineError::InvalidSetting(_))
    ));
}

#[test]
fn imports_copy_or_link_a_real_model_and_refuse_damaged_files_and_duplicates() {
    let models = tempfile::tempdir().unwrap();
    let mut last = (0, None);
    let copied = import_model(
        &real_model(),
        models.path(),
        ImportMode::Copy,
        &mut |d, t| last = (d, t),
    )
    .unwrap();
    assert_eq!(copied.path, models.path().join(SMOLLM2));
    assert!(!copied
        .path
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(last.0, real_model().metadata().unwrap().len());

    let again = import_model(
        &real_model(),
        models.path(),
        ImportMode::Link,
        &mut |_, _| {},
    );
    assert!(
        matches!(again, Err(EngineError::AlreadyInstalled { .. })),
        "{again:?}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let linked = import_model(
        &real_model(),
        elsewhere.path(),
        ImportMode::Link,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(linked
        .path
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(linked.quantization, copied.quantization);

    // A truncated copy of the real file is refused and nothing is written.
    let source = tempfile::tempdir().unwrap();
    let truncated = source.path().join("truncated.gguf");
    let mut bytes = Vec::new();
    std::fs::File::open(real_model())
        .unwrap()
        .take(4096)
        .read_to_end(&mut bytes)
        .unwrap();
    std::fs::write(&truncated, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let refused = import_model(&truncated, target.path(), ImportMode::Copy, &mut |_, _| {});
    assert!(refused.is_err());
    assert_eq!(count(target.path()), 0);
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
