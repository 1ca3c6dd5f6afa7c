//! `k2 serve` in a room full of clients, over raw sockets to the real binary with a real model
//! (SmolLM2-135M) and a real class roster: slow and idle clients are dropped within their
//! timeouts while others are served, a student over their rate or their runs at once gets 429
//! with Retry-After while other students and the teacher are served, `/metrics` answers the
//! teacher (or anyone when public), not a student, and its counters follow the work done, and
//! SIGTERM ends streams and the server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Reads until the server closes the connection (or `limit` passes); returns what was read
/// and when the close came, `None` if it did not.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, None);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return (got, Some(Instant::now())),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Some(Instant::now()))
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got, None)
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// One sample of the text format: `name{labels} value`, the labels written as the server
/// writes them.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

fn scrape(server: &Server) -> String {
    let response = request(server.address, "GET", "/metrics", &[auth()], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

#[test]
fn slow_idle_and_stalled_clients_are_dropped_within_their_timeouts_while_others_are_served() {
    let server = Server::start(&["--header-timeout-s", "2", "--body-timeout-s", "2"]);
    let addr = server.address;

    // Fifty slowloris clients, each sending its headers a byte at a time...
    let head = b"GET /health HTTP/1.1\r\nHost: localhost\r\n";
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&head[..1]).unwrap();
            s
        })
        .collect();
    let opened = Instant::now();
    // ...while /health answers at once.
    let started = Instant::now();
    assert_eq!(server.health()["status"], "ok");
    assert!(started.elapsed() < Duration::from_secs(1));
    let open_now = sample(&scrape(&server), "k2_open_connections");
    assert!(open_now >= 51.0, "{open_now} connections open");

    // One more byte each second: never the whole head, so each is closed at the timeout.
    let feeder = std::thread::spawn({
        let mut streams: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        move || {
            for byte in &head[1..6] {
                std::thread::sleep(Duration::from_secs(1));
                for s in &mut streams {
                    let _ = s.write_all(std::slice::from_ref(byte));
                }
            }
        }
    });
    for s in &mut slow {
        let (got, closed) = read_until_closed(s, Duration::from_secs(6));
        let closed = closed.expect("a slowloris client is dropped");
        assert!(
            closed - opened < Duration::from_secs(3),
            "dropped after {:?}",
            closed - opened
        );
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "{got:?}"
        );
    }
    feeder.join().unwrap();

    // A keep-alive client that asks once, then idles, is closed within the timeout.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answered = Instant::now();
    let (got, closed) = read_until_closed(&mut idle, Duration::from_secs(6));
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let closed = closed.expect("an idle keep-alive connection is closed");
    assert!(
        closed - answered < Duration::from_secs(3),
        "{:?}",
        closed - answered
    );

    // A body that stops arriving: 408 and closed, within the body timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    let (name, value) = auth();
    write!(
        stalled,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n{name}: {value}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"messages\": ["
    )
    .unwrap();
    let sent = Instant::now();
    let (got, closed) = read_until_closed(&mut stalled, Duration::from_secs(6));
    let closed = closed.expect("a stalled body's connection is closed");
    assert!(
        closed - sent < Duration::from_secs(3),
        "{:?}",
        closed - sent
    );
    let answer = parse_response(&got);
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert!(answer.text().contains("request body stopped arriving"));

    // The server is still fine, and counted what it dropped.
    let metrics = scrape(&server);
    assert!(sample(&metrics, "k2_rejections_total{reason=\"header_timeout\"}") >= 51.0);
    assert_eq!(
        sample(&metrics, "k2_rejections_total{reason=\"body_timeout\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "k2_http_requests_total{route=\"/v1/chat/completions\",method=\"POST\",status=\"408\"}"
        ),
        1.0
    );
    assert!(sample(&metrics, "k2_open_connections") <= 2.0);
}

#[test]
fn connections_over_the_cap_are_answered_503_at_once() {
    let server = Server::start(&["--max-connections", "3"]);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    // The three are accepted before the next is refused.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(server.address).unwrap();
    let (got, closed) = read_until_closed(&mut extra, Duration::from_secs(5));
    assert!(closed.is_some());
    let answer = parse_response(&got);
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), Some("1"));
    drop(held);
    // Freed: served again. Until the server has seen the three close, a new connection is
    // still over the cap and refused (and counted) like the first extra one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = 1.0;
    loop {
        let mut s = TcpStream::connect(server.address).unwrap();
        write_request(&mut s, "GET", "/metrics", &[auth()], b"");
        let (got, _) = read_until_closed(&mut s, Duration::from_secs(5));
        let answer = parse_response(&got);
        if answer.status == 200 {
            assert_eq!(
                sample(
                    &answer.text(),
                    "k2_rejections_total{reason=\"max_connections\"}"
                ),
                refused
            );
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.text());
        refused += 1.0;
        assert!(Instant::now() < deadline, "still refused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scaffold run that streams for a while (one long candidate).
fn long_run() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "problem": "Write out every number from 1 to 500, one per line.",
        "settings": {"candidates": 1, "plan": false, "selection": "vote",
                     "sampling": {"max_tokens": 2000, "seed": 1, "temperature": 1.0}}
    }))
    .unwrap()
}

fn short_run() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "problem": "What is 2 + 2?",
        "settings": {"candidates": 1, "plan": false, "selection": "vote",
                     "sampling": {"max_tokens": 8, "seed": 1}}
    }))
    .unwrap()
}

/// Sends `body` as a run on a connection of its own and reads the answer's head.
fn open_run(server: &Server, token: &(&str, String), body: &[u8]) -> (TcpStream, Response) {
    let mut stream = TcpStream::connect(server.address).unwrap();
    write_request(
        &mut stream,
        "POST",
        "/v1/k2/runs",
        std::slice::from_ref(token),
        body,
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the server answers");
        head.push(byte[0]);
    }
    (stream, parse_response(&head))
}

/// A client's runs and chat completions at once, checked for the token `client` (on a server
/// without a rate, allowing one of each).
fn runs_at_once_are_limited(server: &Server, client: (&str, String)) {
    let addr = server.address;
    // A run streams...
    let (first, head) = open_run(server, &client, &long_run());
    assert_eq!(head.status, 200);
    server.wait_for("the run to decode", |h| h["active_rows"] == 1);
    // ...so a second run by the same client is refused, saying when to retry.
    let second = request(
        addr,
        "POST",
        "/v1/k2/runs",
        std::slice::from_ref(&client),
        &short_run(),
    );
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("5"));
    assert_eq!(second.json()["error"]["type"], "rate_limit_error");
    assert!(
        second.text().contains("scaffold runs open"),
        "{}",
        second.text()
    );
    // The client hangs up and asks again at once (a page's Stop, then Solve): the server
    // notices the hang-up within the moment a refused run waits for its slot.
    drop(first);
    let third = request(
        addr,
        "POST",
        "/v1/k2/runs",
        std::slice::from_ref(&client),
        &short_run(),
    );
    assert_eq!(third.status, 200, "{}", third.text());

    // Chat completions at once (this server allows one): a second is refused while the
    // first streams.
    let long_chat = chat_body(
        "Write a long story.",
        json!({"max_tokens": 2000, "stream": true, "temperature": 1.0, "seed": 1}),
    );
    let mut chat = TcpStream::connect(addr).unwrap();
    write_request(
        &mut chat,
        "POST",
        "/v1/chat/completions",
        std::slice::from_ref(&client),
        &long_chat,
    );
    server.wait_for("the chat to decode", |h| h["active_rows"] == 1);
    let small = chat_body("hi", json!({"max_tokens": 4}));
    let refused = request(
        addr,
        "POST",
        "/v1/chat/completions",
        std::slice::from_ref(&client),
        &small,
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.text().contains("chat completions open"),
        "{}",
        refused.text()
    );
    drop(chat);
    server.wait_for("the abandoned chat to stop", |h| h["active_requests"] == 0);

    let metrics = scrape(server);
    assert_eq!(
        sample(&metrics, "k2_rejections_total{reason=\"runs_per_client\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "k2_rejections_total{reason=\"chats_per_client\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "k2_http_requests_total{route=\"/v1/k2/runs\",method=\"POST\",status=\"429\"}"
        ),
        1.0
    );
}

/// A client's request rate, checked for the token `client` (on a server allowing 3 a minute).
fn the_rate_is_limited(server: &Server, client: (&str, String)) {
    let addr = server.address;
    // A burst of 3...
    for _ in 0..3 {
        let models = request(
            addr,
            "GET",
            "/v1/models",
            std::slice::from_ref(&client),
            b"",
        );
        assert_eq!(models.status, 200, "{}", models.text());
    }
    // ...then 429, with the wait until the next request (one every 20 s).
    let refused = request(
        addr,
        "GET",
        "/v1/models",
        std::slice::from_ref(&client),
        b"",
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert!(refused.text().contains("3 a minute"), "{}", refused.text());
    // /health and /metrics are nobody's requests.
    assert_eq!(server.health()["status"], "ok");
    let metrics = scrape(server);
    assert_eq!(
        sample(&metrics, "k2_rejections_total{reason=\"rate\"}"),
        1.0
    );
}

#[test]
fn a_student_over_their_rate_or_runs_at_once_gets_429_and_others_are_not_held_up() {
    let class = start_class(&[
        "--rate-per-minute",
        "0",
        "--chats-per-student",
        "1",
        "--student-chat",
    ]);
    runs_at_once_are_limited(&class.server, bearer(&class.alice));
    // While Alice's run streams, Bob's and the teacher's are accepted: slots are per client.
    let (_alice, head) = open_run(&class.server, &bearer(&class.alice), &long_run());
    assert_eq!(head.status, 200);
    class
        .server
        .wait_for("Alice's run to decode", |h| h["active_rows"] == 1);
    for other in [&bearer(&class.bob), &auth()] {
        let run = request(
            class.server.address,
            "POST",
            "/v1/k2/runs",
            std::slice::from_ref(other),
            &short_run(),
        );
        assert_eq!(run.status, 200, "{}", run.text());
    }

    let class = start_class(&["--rate-per-minute", "3"]);
    the_rate_is_limited(&class.server, bearer(&class.alice));
    // Bob has a bucket of his own, and the teacher none.
    for client in [&bearer(&class.bob), &auth(), &auth(), &auth(), &auth()] {
        let models = request(
            class.server.address,
            "GET",
            "/v1/models",
            std::slice::from_ref(client),
            b"",
        );
        assert_eq!(models.status, 200, "{}", models.text());
    }
}

#[test]
fn limit_teacher_applies_the_limits_to_the_teachers_token_too() {
    // Without a roster: a lab tries its limits with the one token it has.
    let server = Server::start(&[
        "--rate-per-minute",
        "0",
        "--chats-per-student",
        "1",
        "--limit-teacher",
    ]);
    runs_at_once_are_limited(&server, auth());
    let server = Server::start(&["--rate-per-minute", "3", "--limit-teacher"]);
    the_rate_is_limited(&server, auth());

    // Without --limit-teacher the teacher is never refused.
    let server = Server::start(&["--rate-per-minute", "1"]);
    for _ in 0..5 {
        assert_eq!(
            request(server.address, "GET", "/v1/models", &[auth()], b"").status,
            200
        );
    }
    let (_first, head) = open_run(&server, &auth(), &long_run());
    assert_eq!(head.status, 200);
    server.wait_for("the run to decode", |h| h["active_rows"] == 1);
    let second = request(
        server.address,
        "POST",
        "/v1/k2/runs",
        &[auth()],
        &short_run(),
    );
    assert_eq!(second.status, 200, "{}", second.text());
}

#[test]
fn metrics_are_the_teachers_not_a_students_unless_public() {
    let class = start_class(&[]);
    let addr = class.server.address;
    let student = request(addr, "GET", "/metrics", &[bearer(&class.alice)], b"");
    assert_eq!(student.status, 403, "{}", student.text());
    assert!(!student.text().contains("k2_"), "{}", student.text());
    assert_eq!(request(addr, "GET", "/metrics", &[auth()], b"").status, 200);
    let metrics = scrape(&class.server);
    assert_eq!(
        sample(
            &metrics,
            "k2_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"403\"}"
        ),
        1.0
    );

    let class = start_class(&["--metrics-public"]);
    for headers in [vec![], vec![bearer(&class.alice)]] {
        let response = request(class.server.address, "GET", "/metrics", &headers, b"");
        assert_eq!(response.status, 200, "{}", response.text());
    }
}

#[test]
fn metrics_answer_the_teacher_or_anyone_when_public_and_follow_the_work() {
    let server = Server::start(&[]);
    let addr = server.address;
    assert_eq!(request(addr, "GET", "/metrics", &[], b"").status, 401);
    let wrong = [("Authorization", "Bearer not-the-token".to_owned())];
    assert_eq!(request(addr, "GET", "/metrics", &wrong, b"").status, 401);
    let response = request(addr, "GET", "/metrics", &[auth()], b"");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let before = response.text();
    assert_eq!(sample(&before, "k2_generated_tokens_total"), 0.0);
    assert_eq!(sample(&before, "k2_time_to_first_token_seconds_count"), 0.0);
    assert!(before.contains("k2_model_info{model=\"smollm2-135m-instruct-q4_1\"} 1"));

    let body = chat_body(
        "What is 6 times 7?",
        json!({"max_tokens": 12, "temperature": 0}),
    );
    let answer = request(addr, "POST", "/v1/chat/completions", &[auth()], &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let usage = &answer.json()["usage"];
    // The answer can arrive before the scheduler publishes the step that finished it.
    server.wait_for("the batch to be idle", |h| h["active_rows"] == 0);

    let after = scrape(&server);
    let generated = sample(&after, "k2_generated_tokens_total");
    let completion = usage["completion_tokens"].as_f64().unwrap();
    assert!(
        generated >= completion && generated <= completion + 1.0,
        "{generated} generated, {completion} in the answer"
    );
    assert_eq!(
        sample(&after, "k2_prompt_tokens_total"),
        usage["prompt_tokens"].as_f64().unwrap()
    );
    assert_eq!(sample(&after, "k2_time_to_first_token_seconds_count"), 1.0);
    assert_eq!(
        sample(&after, "k2_time_to_first_token_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(sample(&after, "k2_time_to_first_token_seconds_sum") > 0.0);
    assert!(sample(&after, "k2_decode_seconds_total") > 0.0);
    assert_eq!(
        sample(
            &after,
            "k2_http_requests_total{route=\"/v1/chat/completions\",method=\"POST\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "k2_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"}"
        ),
        2.0
    );
    assert_eq!(sample(&after, "k2_queue_waiting"), 0.0);
    assert_eq!(sample(&after, "k2_active_rows"), 0.0);

    // Public: no token needed.
    let public = Server::start(&["--metrics-public"]);
    let response = request(public.address, "GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("# TYPE k2_active_rows gauge"));
}

#[cfg(unix)]
#[test]
fn sigterm_ends_open_streams_and_the_server() {
    let mut server = Server::start(&[]);
    let (mut stream, head) = open_run(&server, &auth(), &long_run());
    assert_eq!(head.status, 200);
    server.wait_for("the run to decode", |h| h["active_rows"] == 1);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The stream ends (with the run's error event) and the server exits on its own.
    let (rest, closed) = read_until_closed(&mut stream, Duration::from_secs(20));
    assert!(closed.is_some(), "the stream ended");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("event: error"), "{rest}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
