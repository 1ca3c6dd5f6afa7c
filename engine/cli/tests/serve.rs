//! `k2 serve` started for real with a real model (SmolLM2-135M), spoken to over HTTP: the
//! OpenAI-compatible API, the scaffold over SSE, security limits, a full queue, and clients
//! that hang up.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn chat_completions_whole_and_streamed_agree_and_report_usage_and_time() {
    let server = Server::start(&[]);
    let body = chat_body(
        "What is 6 times 7?",
        json!({"max_tokens": 40, "temperature": 0}),
    );
    let whole = request(
        server.address,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        &body,
    );
    assert_eq!(whole.status, 200, "{}", whole.text());
    let whole = whole.json();
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.is_empty());
    assert_eq!(whole["object"], "chat.completion");
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(whole["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    for field in ["queue_time", "prompt_time", "completion_time", "total_time"] {
        assert!(
            whole["time_info"][field].as_f64().unwrap() >= 0.0,
            "{field}"
        );
    }

    let body = chat_body(
        "What is 6 times 7?",
        json!({"max_tokens": 40, "temperature": 0, "stream": true,
               "stream_options": {"include_usage": true}}),
    );
    let streamed = request(
        server.address,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        &body,
    );
    assert_eq!(streamed.status, 200);
    assert!(streamed
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&streamed.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text, "greedy streamed text equals the whole answer");
    let last = chunks.last().unwrap();
    assert_eq!(
        last["usage"]["completion_tokens"],
        whole["usage"]["completion_tokens"]
    );
    assert!(last["time_info"]["total_time"].as_f64().is_some());

    // n completions stream as separate choices.
    let body = chat_body(
        "Name a prime number.",
        json!({"max_tokens": 12, "n": 3, "seed": 4, "stream": true}),
    );
    let streamed = request(
        server.address,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        &body,
    );
    let mut finished = [false; 3];
    for d in sse_data(&streamed.text()) {
        if d == "[DONE]" {
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(&d).unwrap();
        if chunk["choices"][0]["finish_reason"].is_string() {
            finished[chunk["choices"][0]["index"].as_u64().unwrap() as usize] = true;
        }
    }
    assert_eq!(finished, [true; 3]);

    let models = request(server.address, "GET", "/v1/models", &[auth()], b"").json();
    assert_eq!(
        models["data"][0]["id"], "smollm2-135m-instruct-q4_1",
        "{models}"
    );
}

#[test]
fn tokens_limits_and_static_paths_are_enforced() {
    let ui = tempfile::tempdir().unwrap();
    let dist = ui.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<p>UI-OK</p>").unwrap();
    std::fs::write(dist.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(ui.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let server = Server::start(&[
        "--ui",
        dist.to_str().unwrap(),
        "--max-body-kib",
        "64",
        "--max-tokens-limit",
        "256",
    ]);
    let addr = server.address;
    let small = chat_body("hi", json!({"max_tokens": 4}));

    // Health needs no token; the API does.
    assert_eq!(server.health()["status"], "ok");
    let none = request(addr, "POST", "/v1/chat/completions", &[], &small);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(none.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing token"));
    let wrong = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer not-the-token".into())],
        &small,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(request(addr, "GET", "/v1/models", &[], b"").status, 401);
    assert_eq!(request(addr, "POST", "/v1/k2/runs", &[], b"{}").status, 401);

    // Limits: body size, max_tokens, n, unknown model, broken JSON.
    let huge = chat_body(&"x".repeat(200 * 1024), json!({}));
    assert_eq!(
        request(addr, "POST", "/v1/chat/completions", &[auth()], &huge).status,
        413
    );
    let greedy = chat_body("hi", json!({"max_tokens": 1_000_000_000u64}));
    let refused = request(addr, "POST", "/v1/chat/completions", &[auth()], &greedy);
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("limit of 256"),
        "{}",
        refused.text()
    );
    let too_many = chat_body("hi", json!({"n": 1000}));
    assert_eq!(
        request(addr, "POST", "/v1/chat/completions", &[auth()], &too_many).status,
        400
    );
    let other_model = chat_body("hi", json!({"model": "gpt-9"}));
    assert_eq!(
        request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[auth()],
            &other_model
        )
        .status,
        404
    );
    let broken = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        b"{\"messages\": [",
    );
    assert!(
        broken.status == 400 || broken.status == 422,
        "{}",
        broken.status
    );

    // The UI folder and nothing outside it.
    let index = request(addr, "GET", "/", &[], b"");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("UI-OK"));
    assert_eq!(
        request(addr, "GET", "/app.js", &[], b"").text(),
        "console.log(1)"
    );
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/app.js/../../secret.txt",
        "/%2e%2e%2fsecret.txt",
        "//secret.txt",
        "/....//secret.txt",
    ] {
        let response = request(addr, "GET", path, &[], b"");
        assert!(
            !response.text().contains("TOP-SECRET"),
            "{path} escaped the UI folder"
        );
    }
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_hung_up_clients_free_their_rows() {
    let server = Server::start(&["--max-rows", "1", "--max-waiting", "1"]);
    let addr = server.address;
    // A long answer takes the only row...
    let long = chat_body(
        "Write a long story.",
        json!({"max_tokens": 3000, "stream": true, "temperature": 1.0, "seed": 1}),
    );
    let mut first = TcpStream::connect(addr).unwrap();
    write_request(&mut first, "POST", "/v1/chat/completions", &[auth()], &long);
    server.wait_for("the first request to decode", |h| h["active_rows"] == 1);
    // ...a second waits...
    let mut second = TcpStream::connect(addr).unwrap();
    write_request(
        &mut second,
        "POST",
        "/v1/chat/completions",
        &[auth()],
        &long,
    );
    server.wait_for("the second request to wait", |h| h["waiting"] == 1);
    // ...and a third is refused at once, saying when to come back.
    let third = request(addr, "POST", "/v1/chat/completions", &[auth()], &long);
    assert_eq!(third.status, 429, "{}", third.text());
    let retry: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);

    // The first client reads a little, then hangs up: its row goes to the waiting request.
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buffer = [0u8; 512];
    assert!(first.read(&mut buffer).unwrap() > 0);
    drop(first);
    server.wait_for("the waiting request to take the freed row", |h| {
        h["waiting"] == 0 && h["active_rows"] == 1
    });
    drop(second);
    server.wait_for("every row to be freed", |h| h["active_rows"] == 0);
}

#[test]
fn the_scaffold_streams_its_protocol_events_over_sse() {
    let server = Server::start(&[]);
    let run = json!({
        "problem": "What is 12 + 30?",
        "settings": {"candidates": 2, "plan": true, "selection": "vote",
                     "plan_max_tokens": 24,
                     "sampling": {"max_tokens": 48, "seed": 3}}
    });
    let response = request(
        server.address,
        "POST",
        "/v1/k2/runs",
        &[auth()],
        &serde_json::to_vec(&run).unwrap(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let events: Vec<k2_protocol::Event> = sse_data(&response.text())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events.len() > 10);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64, "events are numbered without gaps");
    }
    assert!(matches!(
        events[0].kind,
        k2_protocol::RunEvent::Started { .. }
    ));
    assert!(
        matches!(events.last().unwrap().kind, k2_protocol::RunEvent::Stats(_)),
        "the run completes: {:?}",
        events.last()
    );
    let view = k2_protocol::RunView::replay(&events);
    assert_eq!(view.candidates.len(), 2);
    assert!(view.plan_finished && !view.plan.is_empty());
    assert!(view.final_answer.is_some());
    // Every SSE event is named by its type, for EventSource listeners.
    assert!(response.text().contains("event: plan_delta"));
}

#[test]
fn a_classroom_servers_history_lists_searches_annotates_checks_exports_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("classroom.db");
    let server = Server::start(&["--db", db.to_str().unwrap()]);
    let addr = server.address;
    let run = json!({
        "problem": "What is 12 + 30? <b>bold</b>",
        "settings": {"candidates": 2, "plan": false, "selection": "vote",
                     "sampling": {"max_tokens": 32, "seed": 5}},
        "session": "  Homework 3 "
    });
    let body = serde_json::to_vec(&run).unwrap();
    let streamed = request(addr, "POST", "/v1/k2/runs", &[auth()], &body);
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let id: i64 = streamed.header("x-k2-run").unwrap().parse().unwrap();
    let get = |path: &str| request(addr, "GET", path, &[auth()], b"");
    let post = |path: &str, body: serde_json::Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let headers = [auth(), ("Content-Type", "application/json".to_owned())];
        request(addr, "POST", path, &headers, &bytes)
    };

    let listed = get("/v1/k2/runs").json();
    assert_eq!(listed["runs"][0]["id"], id);
    assert_eq!(listed["runs"][0]["status"], "done");
    assert_eq!(listed["runs"][0]["session_title"], "Homework 3");
    assert_eq!(listed["unreadable"], json!([]));
    let found = get("/v1/k2/runs?q=12%20%2B%2030").json();
    assert_eq!(found["runs"][0]["id"], id);
    assert!(found["runs"][0]["snippet"].as_str().unwrap().contains('«'));
    assert_eq!(get("/v1/k2/runs?q=zebra").json()["runs"], json!([]));

    // One run without its events: what the listing says, the whole problem, how it was made;
    // never the problem's answer key.
    let shown = get(&format!("/v1/k2/runs/{id}"));
    assert_eq!(shown.status, 200, "{}", shown.text());
    let shown = shown.json();
    assert_eq!(shown["id"], id);
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["problem_text"], "What is 12 + 30? <b>bold</b>");
    assert_eq!(shown["config"]["settings"]["candidates"], 2);
    assert!(shown.get("known_answer").is_none() && !shown.to_string().contains("known_answer"));
    assert_eq!(get("/v1/k2/runs/999999").status, 404);

    // Notes on the whole run and on one event; a note past the last event is refused.
    let notes = post(
        &format!("/v1/k2/runs/{id}/notes"),
        json!({"text": "Well argued"}),
    );
    assert_eq!(notes.status, 200, "{}", notes.text());
    let notes = post(
        &format!("/v1/k2/runs/{id}/notes"),
        json!({"text": "Why this step?", "seq": 1}),
    )
    .json();
    assert_eq!(notes.as_array().unwrap().len(), 2);
    assert_eq!(notes[1]["seq"], 1);
    let beyond = post(
        &format!("/v1/k2/runs/{id}/notes"),
        json!({"text": "x", "seq": 1_000_000}),
    );
    assert_eq!(beyond.status, 400);
    assert_eq!(get(&format!("/v1/k2/runs/{id}/notes")).json(), notes);

    // The attempt is checked against the stored answer; the answer itself is never sent back.
    let events: Vec<k2_protocol::Event> =
        serde_json::from_value(get(&format!("/v1/k2/runs/{id}/events")).json()).unwrap();
    let view = k2_protocol::RunView::replay(&events);
    let attempt = post(
        &format!("/v1/k2/runs/{id}/attempts"),
        json!({"answer": "certainly not this"}),
    );
    assert_eq!(attempt.status, 200, "{}", attempt.text());
    let attempt = attempt.json();
    // Checked by the one check, on the stored run: unsure unless the tutor was confident.
    let check = k2_engine::answer::check::check_attempt_in_view(
        "certainly not this",
        Default::default(),
        &view,
    );
    assert_eq!(attempt["check"], json!(check));
    let equivalent = match check.verdict {
        k2_protocol::CheckVerdict::Right => Some(true),
        k2_protocol::CheckVerdict::Wrong => Some(false),
        k2_protocol::CheckVerdict::Unsure => None,
    };
    assert_eq!(attempt["equivalent"], json!(equivalent));
    assert_eq!(attempt.as_object().unwrap().len(), 3, "{attempt}");

    let html = get(&format!("/v1/k2/runs/{id}/export?format=html"));
    assert_eq!(html.status, 200);
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(html
        .header("content-disposition")
        .unwrap()
        .contains(&format!("k2-run-{id}.html")));
    assert!(html.text().contains("Why this step?"));
    assert!(
        !html.text().contains("<b>bold</b>"),
        "model input is escaped"
    );
    assert!(get(&format!("/v1/k2/runs/{id}/export"))
        .text()
        .contains("Well argued"));
    assert_eq!(
        get(&format!("/v1/k2/runs/{id}/export?format=pdf")).status,
        400
    );

    // The one route the UI uses (`k2_protocol::HistoryRequest`) answers as the REST routes do.
    let history = |request: serde_json::Value| post("/v1/k2/history", request);
    assert_eq!(
        history(json!({"op": "list", "query": "12 + 30"})).json(),
        found
    );
    assert_eq!(history(json!({"op": "notes", "run": id})).json(), notes);
    let file = history(json!({"op": "export", "run": id, "format": "md"})).json();
    assert_eq!(file["file_name"], format!("k2-run-{id}.md"));
    assert!(file["media_type"]
        .as_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(file["content"].as_str().unwrap().contains("Well argued"));
    let refused = history(json!({"op": "export", "run": id, "format": "pdf"}));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(history(json!({"op": "drop_everything"})).status >= 400);

    // Checked work: the server's model reads it only where the numbers could not decide.
    let by_numbers = history(json!({"op": "check_work", "run": id, "work": "17 + 25 = 41"}));
    assert_eq!(by_numbers.status, 200, "{}", by_numbers.text());
    let by_numbers = by_numbers.json();
    assert_eq!(by_numbers["check"]["first_wrong"]["kind"], "arithmetic");
    assert_eq!(by_numbers["check"]["reviewed_by_model"], false);
    let words = "Add the two numbers.\nThen take away the first one.";
    let by_model = history(json!({"op": "check_work", "run": id, "work": words}));
    assert_eq!(by_model.status, 200, "{}", by_model.text());
    let by_model = by_model.json();
    assert_eq!(by_model["check"]["reviewed_by_model"], true, "{by_model}");
    let doubt = &by_model["check"]["model_doubt"];
    assert!(
        doubt.is_null() || (doubt["kind"] == "model_doubt" && doubt["certainty"] == "unsure"),
        "{by_model}"
    );

    let deleted = request(addr, "DELETE", &format!("/v1/k2/runs/{id}"), &[auth()], b"");
    assert_eq!(deleted.status, 204);
    assert_eq!(history(json!({"op": "delete", "run": id})).status, 404);
    assert_eq!(get(&format!("/v1/k2/runs/{id}")).status, 404);
    assert_eq!(get(&format!("/v1/k2/runs/{id}/events")).status, 404);
    assert_eq!(get(&format!("/v1/k2/runs/{id}/notes")).status, 404);
    assert_eq!(get("/v1/k2/runs").json()["runs"], json!([]));
}
