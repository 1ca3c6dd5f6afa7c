//! The remote backend (`k2 solve --backend URL`): against the real `k2 serve` it gives exactly
//! the local answer; against servers that fail (killed mid-stream, hanging, malformed streams,
//! errors) it stops with a clear error, stores the run as failed, and never hangs.
//!
//! Failing servers are small TCP programs here that misbehave on purpose at the byte level;
//! the well-behaved peers are real servers (`k2 serve` here, llama.cpp's in tests/python).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use k2_protocol::{Event, RunView};

/// `k2 solve` of a fixed problem: one greedy candidate, no plan, events as JSON lines.
fn solve(backend: &[&str], db: Option<&Path>, max_tokens: &str) -> std::process::Command {
    let mut command = k2();
    command.args([
        "solve",
        "What is 9 + 10? Answer with a number.",
        "--planner",
        "solver",
        "--no-plan",
        "-n",
        "1",
        "--temperature",
        "0",
        "--max-tokens",
        max_tokens,
        "--format",
        "jsonl",
    ]);
    command.args(backend);
    match db {
        Some(db) => command.args(["--db", db.to_str().unwrap()]),
        None => command.arg("--no-store"),
    };
    command
}

fn events(output: &Output) -> Vec<Event> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn run_with_deadline(mut command: std::process::Command, limit: Duration) -> Output {
    let started = Instant::now();
    let output = command.output().unwrap();
    assert!(
        started.elapsed() < limit,
        "took {:?} (limit {limit:?})",
        started.elapsed()
    );
    output
}

#[test]
fn remote_solving_through_k2_serve_gives_the_local_answer() {
    let server = Server::start(&[]);
    let local = solve(&["--model", smollm().to_str().unwrap()], None, "60")
        .output()
        .unwrap();
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    let url = server.url();
    let remote = solve(&["--backend", &url, "--backend-token", TOKEN], None, "60")
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let (local, remote) = (events(&local), events(&remote));
    let (local, remote) = (RunView::replay(&local), RunView::replay(&remote));
    assert_eq!(local.candidates.len(), 1);
    assert!(
        !local.candidates[0].answer_text.is_empty() || !local.candidates[0].reasoning.is_empty()
    );
    assert_eq!(
        (
            &remote.candidates[0].reasoning,
            &remote.candidates[0].answer_text
        ),
        (
            &local.candidates[0].reasoning,
            &local.candidates[0].answer_text
        ),
        "greedy decoding on the server equals decoding here"
    );

    // Whole answers instead of streams give the same text.
    let whole = solve(
        &[
            "--backend",
            &url,
            "--backend-token",
            TOKEN,
            "--backend-no-stream",
        ],
        None,
        "60",
    )
    .output()
    .unwrap();
    assert!(whole.status.success());
    let whole = RunView::replay(&events(&whole));
    assert_eq!(
        whole.candidates[0].answer_text,
        local.candidates[0].answer_text
    );

    // The full scaffold, planner and judge on the server too, three sampled candidates.
    let full = k2()
        .args(["solve", "What is 3 * 14?", "-n", "3", "--max-tokens", "40"])
        .args(["--backend", &url, "--backend-token", TOKEN])
        .args([
            "--planner-backend",
            &url,
            "--select",
            "judge",
            "--format",
            "jsonl",
            "--no-store",
        ])
        .output()
        .unwrap();
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let view = RunView::replay(&events(&full));
    assert_eq!(view.candidates.len(), 3);
    assert!(view.candidates.iter().all(|c| c.finished.is_some()));
    assert!(view.plan_finished && view.stats.is_some());
}

#[test]
fn a_server_killed_mid_answer_fails_the_run_and_it_is_stored_as_failed() {
    let mut server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let url = server.url();
    // Greedy on the story prompt below runs to the token limit rather than ending early.
    let mut child = k2()
        .args([
            "solve",
            "Tell a very long story about a triangle.",
            "-n",
            "1",
            "--no-plan",
        ])
        .args([
            "--planner",
            "solver",
            "--temperature",
            "0",
            "--max-tokens",
            "4000",
        ])
        .args([
            "--backend",
            &url,
            "--backend-token",
            TOKEN,
            "--format",
            "jsonl",
        ])
        .args(["--db", db.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Wait for streamed text, then kill the server under it.
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "k2 solve ended early"
        );
        if line.contains("candidate_delta") {
            break;
        }
    }
    server.child.kill().unwrap();
    let started = Instant::now();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the client hung"
    );
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("mid-answer"),
        "the error says the stream broke: {stderr}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(k2_store::Store::open(&db)).unwrap();
    let runs = runtime
        .block_on(store.list_runs(None, k2_store::PageRequest::first(5)))
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].status, k2_store::RunStatus::Failed);
}

/// A TCP server answering each connection with `respond(request head)`.
fn fake_server(respond: fn(&str, &mut TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let head = read_head(&mut stream);
                respond(&head, &mut stream);
            });
        }
    });
    address
}

/// The request line and headers (the body, if any, is read and dropped).
fn read_head(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    head
}

fn models_or(head: &str, stream: &mut TcpStream, chat: impl FnOnce(&mut TcpStream)) {
    if head.starts_with("GET /v1/models") {
        let body = r#"{"object":"list","data":[{"id":"fake-model","object":"model"}]}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    } else {
        chat(stream);
    }
}

fn sse_head(stream: &mut TcpStream) {
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
    );
}

fn chunk(content: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]})
    )
}

fn failing_solve(address: SocketAddr) -> (String, Vec<Event>) {
    let url = format!("http://{address}");
    let output = run_with_deadline(
        solve(&["--backend", &url, "--backend-timeout", "2"], None, "50"),
        Duration::from_secs(30),
    );
    assert!(!output.status.success(), "the run must fail");
    (
        String::from_utf8_lossy(&output.stderr).into_owned(),
        events(&output),
    )
}

#[test]
fn a_server_that_never_answers_times_out() {
    let address = fake_server(|_, stream| {
        std::thread::sleep(Duration::from_secs(60));
        let _ = stream;
    });
    let (stderr, _) = failing_solve(address);
    assert!(stderr.contains("did not answer in time"), "{stderr}");
}

#[test]
fn a_server_that_stalls_mid_stream_times_out() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            let _ = stream.write_all(chunk("The answer").as_bytes());
            std::thread::sleep(Duration::from_secs(60));
        })
    });
    let (stderr, events) = failing_solve(address);
    assert!(stderr.contains("sent nothing for too long"), "{stderr}");
    // What arrived before the stall was streamed, then the run ended with an error event.
    let view = RunView::replay(&events);
    assert_eq!(view.candidates[0].answer_text, "The answer");
    assert!(view.error.is_some());
}

#[test]
fn a_malformed_stream_is_reported() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            let _ = stream.write_all(chunk("ok").as_bytes());
            let _ = stream.write_all(b"data: {\"choices\": [oops\n\n");
        })
    });
    let (stderr, _) = failing_solve(address);
    assert!(stderr.contains("malformed stream"), "{stderr}");
}

#[test]
fn a_stream_cut_without_its_end_is_reported_not_retried() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            let _ = stream.write_all(chunk("partial").as_bytes());
            // Connection closes here: no finish_reason, no [DONE].
        })
    });
    let (stderr, _) = failing_solve(address);
    assert!(stderr.contains("closed the stream mid-answer"), "{stderr}");
}

#[test]
fn server_errors_are_reported_with_their_message() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            let body = r#"{"error":{"message":"GPU on fire","type":"server_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        })
    });
    let (stderr, _) = failing_solve(address);
    assert!(stderr.contains("HTTP 500: GPU on fire"), "{stderr}");
}

#[test]
fn reasoning_sent_as_reasoning_content_arrives_as_the_candidates_reasoning() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            for piece in ["Nine plus ten ", "is nineteen."] {
                let data = serde_json::json!({"choices":[{"index":0,"delta":{"reasoning_content":piece}}]});
                let _ = write!(stream, "data: {data}\n\n");
            }
            let _ = stream.write_all(chunk("The answer is \\boxed{19}.").as_bytes());
            let done =
                serde_json::json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
            let _ = write!(stream, "data: {done}\n\ndata: [DONE]\n\n");
        })
    });
    let url = format!("http://{address}");
    let output = run_with_deadline(
        solve(&["--backend", &url], None, "50"),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let view = RunView::replay(&events(&output));
    assert!(view.candidates[0]
        .reasoning
        .contains("Nine plus ten is nineteen."));
    assert!(view.candidates[0].answer_text.contains("\\boxed{19}"));
    assert_eq!(view.final_answer.unwrap().answer.as_deref(), Some("19"));
}

#[test]
fn a_server_that_stays_busy_is_retried_then_reported() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            let body = r#"{"error":{"message":"queue full","type":"rate_limit_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        })
    });
    let started = Instant::now();
    let (stderr, _) = failing_solve(address);
    assert!(stderr.contains("busy (HTTP 429: queue full)"), "{stderr}");
    // Three retries, each after the server's Retry-After of one second.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A proxy in front of `target` that records the body of every request it forwards.
fn recording_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                if length > 0 {
                    bodies
                        .lock()
                        .unwrap()
                        .push(String::from_utf8(body.clone()).unwrap());
                }
                let mut server = TcpStream::connect(target).unwrap();
                server.write_all(head.as_bytes()).unwrap();
                server.write_all(&body).unwrap();
                let mut back = server.try_clone().unwrap();
                let mut client = client;
                let _ = std::io::copy(&mut back, &mut client);
            });
        }
    });
    (address, recorded)
}

/// Every sampling setting (temperature, top-k, top-p, min-p, seed), `max_tokens` and `stop`
/// travels from the remote backend through the shared wire format to `k2 serve`, which decodes
/// with exactly those settings, and the text equals local decoding with them.
#[test]
fn every_sampling_setting_round_trips_through_k2_serve() {
    use k2_scaffold::openai::{ChatCompletion, ChatCompletionRequest};
    use k2_scaffold::{
        Backend, CancelToken, ChatMessage, GenerateOptions, RemoteBackend, RemoteConfig,
        SamplingParams,
    };

    // Every prompt computed whole: a prompt resumed from the prefix cache is computed in other
    // chunks, whose rounding can move a sampled token, and this test compares texts exactly.
    let server = Server::start(&["--no-prefix-cache"]);
    // Every field away from its default and from OpenAI's defaults.
    let options = GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 7,
            top_p: 0.93,
            min_p: 0.03,
            seed: 20_240_917,
        },
        max_tokens: 29,
        stop: vec!["zebra".into(), "\n\n\n".into()],
        ..GenerateOptions::default()
    };
    let messages = [ChatMessage::user("Write one sentence about the sea.")];

    // What the server decoded with, as it reports it: exactly what the request asked for.
    let body = ChatCompletionRequest::from_options("", &messages, &options, false);
    let response = request(
        server.address,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let whole: ChatCompletion = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        whole.k2_options.as_ref(),
        Some(&options),
        "{}",
        response.text()
    );
    let server_text = whole.choices[0].message.content.clone().unwrap();
    assert!(!server_text.is_empty());

    // The remote backend, streamed and whole: what it sends parses back to the same options,
    // and the server's answer is the same text.
    let (proxy, bodies) = recording_proxy(server.address);
    for stream in [true, false] {
        let mut config = RemoteConfig::new(format!("http://{proxy}"));
        config.token = Some(TOKEN.into());
        config.stream = stream;
        let backend = RemoteBackend::connect(config).unwrap();
        let completions = backend
            .complete(&messages, 1, &options, &CancelToken::new(), &mut |_, _| {})
            .unwrap();
        assert_eq!(completions[0].text, server_text, "stream: {stream}");
        let sent = bodies.lock().unwrap().pop().expect("a request body");
        let sent: ChatCompletionRequest = serde_json::from_str(&sent).unwrap();
        assert_eq!(sent.stream, stream);
        assert_eq!(sent.to_options(1, 0).unwrap(), options, "stream: {stream}");
    }

    // Local decoding with the same options gives the same text.
    let model =
        k2_engine::loader::load_model(&smollm(), &candle_core::Device::Cpu, &mut |_| {}).unwrap();
    let local = k2_engine::backend::LocalBackend::new(Arc::new(model))
        .complete(&messages, 1, &options, &CancelToken::new(), &mut |_, _| {})
        .unwrap();
    assert_eq!(local[0].text, server_text);
}

// ---- issue 28, finding 7: a hostile server is held to --max-tokens and to a deadline ----

/// A solve against `address` with `extra` options, expected to fail within `limit`.
fn hostile_solve(address: SocketAddr, extra: &[&str], limit: Duration) -> (String, Vec<Event>) {
    let url = format!("http://{address}");
    let mut backend = vec!["--backend", &url];
    backend.extend_from_slice(extra);
    let output = run_with_deadline(solve(&backend, None, "50"), limit);
    assert!(!output.status.success(), "the run must fail");
    (
        String::from_utf8_lossy(&output.stderr).into_owned(),
        events(&output),
    )
}

#[test]
fn a_server_that_ignores_max_tokens_is_cut_off() {
    // 5.4 M characters were accepted for --max-tokens 50: this server sends 8 M, then ends
    // the stream properly, unless the client leaves first.
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            let piece = chunk(&"x".repeat(1000));
            for _ in 0..8000 {
                if stream.write_all(piece.as_bytes()).is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"data: [DONE]\n\n");
        })
    });
    let (stderr, events) = hostile_solve(address, &[], Duration::from_secs(30));
    assert!(
        stderr.contains("at most 50 tokens") && stderr.contains("does not honour max_tokens"),
        "{stderr}"
    );
    let view = RunView::replay(&events);
    let received = view.candidates[0].answer_text.len();
    assert!(
        received <= 50 * 64 + (64 << 10),
        "{received} bytes were accepted"
    );
    assert!(view.error.is_some());
}

#[test]
fn an_endless_line_is_cut_off() {
    let address = fake_server(|head, stream| {
        models_or(head, stream, |stream| {
            sse_head(stream);
            // 8 MiB in one line, then the end of the stream.
            let _ = stream.write_all(b"data: ");
            let filler = [b'7'; 4096];
            for _ in 0..2048 {
                if stream.write_all(&filler).is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"\n\ndata: [DONE]\n\n");
        })
    });
    let (stderr, _) = hostile_solve(address, &[], Duration::from_secs(30));
    assert!(
        stderr.contains("a line of more than") || stderr.contains("does not honour max_tokens"),
        "{stderr}"
    );
}

/// Sends a token every 200 ms for a minute: never silent long enough for the idle timeout.
fn trickle(head: &str, stream: &mut TcpStream) {
    models_or(head, stream, |stream| {
        sse_head(stream);
        for _ in 0..300 {
            if stream.write_all(chunk("a").as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = stream.write_all(b"data: [DONE]\n\n");
    })
}

#[test]
fn a_trickling_server_meets_the_deadline() {
    let address = fake_server(trickle);
    let started = Instant::now();
    let (stderr, events) = hostile_solve(
        address,
        &["--backend-timeout", "2", "--backend-deadline", "3"],
        Duration::from_secs(20),
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(
        stderr.contains("within 3 s") && stderr.contains("--backend-deadline"),
        "{stderr}"
    );
    // What trickled in before the deadline was streamed.
    let view = RunView::replay(&events);
    assert!(view.candidates[0].answer_text.starts_with("aaa"));
}

#[test]
fn without_a_deadline_one_follows_from_the_idle_timeout_and_max_tokens() {
    let address = fake_server(trickle);
    let url = format!("http://{address}");
    // 1 s of idle timeout plus a second for each of 3 tokens.
    let output = run_with_deadline(
        solve(&["--backend", &url, "--backend-timeout", "1"], None, "3"),
        Duration::from_secs(20),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("within 4 s"), "{stderr}");
}
