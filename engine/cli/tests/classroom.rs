//! A class on `k2 serve` (issue 29), started for real with a real model (SmolLM2-135M), a real
//! roster written by `k2 serve roster add`, and a real session database: every route tried
//! with every role, student mode enforced by the server, reveal, test mode, authors taken from
//! tokens, and run ids never reused.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use k2_protocol::{Event, RunEvent};
use serde_json::{json, Value};

impl Class {
    fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(bearer(token));
        }
        let bytes = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        request(self.server.address, method, path, &headers, &bytes)
    }

    /// Runs a problem to its end as `token`; answers the stored run's id and the streamed
    /// events.
    fn solve(&self, token: &str, problem: &str, student: bool) -> (i64, Vec<Event>) {
        let run = json!({
            "problem": problem,
            "settings": {"candidates": 2, "plan": true, "selection": "vote",
                         "plan_max_tokens": 24, "student": student, "hints": true,
                         "sampling": {"max_tokens": 40, "seed": 11}},
            "session": "Homework 3"
        });
        let response = self.call(Some(token), "POST", "/v1/k2/runs", Some(run));
        assert_eq!(response.status, 200, "{}", response.text());
        let id = response.header("x-k2-run").unwrap().parse().unwrap();
        let events = sse_data(&response.text())
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        self.wait_stored(id);
        (id, events)
    }

    /// Waits until the run's end is stored: its stream can end a moment before the recorder
    /// commits the last events (every 100 ms).
    fn wait_stored(&self, run: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = self.call(Some(TOKEN), "GET", &format!("/v1/k2/runs/{run}"), None);
            if shown.status == 200 && shown.json()["status"] != "running" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} is still running: {}",
                shown.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn events(&self, token: &str, run: i64) -> Vec<Event> {
        let response = self.call(
            Some(token),
            "GET",
            &format!("/v1/k2/runs/{run}/events"),
            None,
        );
        assert_eq!(response.status, 200, "{}", response.text());
        serde_json::from_value(response.json()).unwrap()
    }
}

fn kinds(events: &[Event]) -> BTreeSet<&'static str> {
    events.iter().map(|e| e.kind.kind_name()).collect()
}

/// What student mode must keep from a student before the reveal.
fn assert_no_solution(events: &[Event], what: &str) {
    let shown = kinds(events);
    for hidden in [
        "plan_delta",
        "plan_finished",
        "candidate_delta",
        "answer_groups",
        "verdict",
    ] {
        assert!(
            !shown.contains(hidden),
            "{what}: {hidden} reached the student"
        );
    }
    for event in events {
        match &event.kind {
            RunEvent::FinalAnswer { answer, .. } | RunEvent::CandidateFinished { answer, .. } => {
                assert_eq!(answer, &None, "{what}: an answer reached the student")
            }
            RunEvent::Hint(hint) => {
                assert!(hint.text.is_empty(), "{what}: an unopened hint: {hint:?}")
            }
            _ => {}
        }
    }
}

#[test]
fn every_route_answers_each_role_as_the_table_says() {
    let class = start_class(&[]);
    let carol = roster_add(&class.roster, "carol");
    let (alices, _) = class.solve(&class.alice, "What is 12 + 30?", true);
    let (teachers, _) = class.solve(TOKEN, "What is 5 + 5?", false);
    // Carol leaves the class: her token stops working once the server re-reads the roster.
    let removal = k2()
        .args(["serve", "roster", "remove", "carol", "--roster"])
        .arg(&class.roster)
        .output()
        .unwrap();
    assert!(removal.status.success());
    std::thread::sleep(Duration::from_millis(1500));

    // Who asks; bob asks about alice's run.
    let roles: [(&str, Option<&str>); 6] = [
        ("alice", Some(&class.alice)),
        ("bob", Some(&class.bob)),
        ("no token", None),
        ("wrong token", Some("not-a-token-of-this-class")),
        ("removed", Some(&carol)),
        ("teacher", Some(TOKEN)),
    ];
    let a = alices;
    let chat = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4});
    let history = |op: Value| Some(op);
    // Route, body, then the status for alice, bob, no token, wrong token, removed, teacher.
    let table: Vec<(String, &str, Option<Value>, [u16; 6])> = vec![
        (
            "/v1/models".into(),
            "GET",
            None,
            [200, 200, 401, 401, 401, 200],
        ),
        (
            "/metrics".into(),
            "GET",
            None,
            [403, 403, 401, 401, 401, 200],
        ),
        (
            "/v1/chat/completions".into(),
            "POST",
            Some(chat),
            [403, 403, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/me".into(),
            "GET",
            None,
            [200, 200, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/runs".into(),
            "GET",
            None,
            [200, 200, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}"),
            "GET",
            None,
            [200, 404, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/events"),
            "GET",
            None,
            [200, 404, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/export"),
            "GET",
            None,
            [403, 404, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/notes"),
            "GET",
            None,
            [403, 403, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/notes"),
            "POST",
            Some(json!({"text": "Well done"})),
            [403, 403, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/attempts"),
            "POST",
            Some(json!({"answer": "42"})),
            [200, 404, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/history".into(),
            "POST",
            history(json!({"op": "record", "run": a})),
            [200, 404, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/history".into(),
            "POST",
            history(json!({"op": "open_hint", "run": a, "level": 1})),
            [200, 404, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/history".into(),
            "POST",
            history(json!({"op": "check_work", "run": a, "work": "12 + 30 = 42"})),
            [200, 404, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/history".into(),
            "POST",
            history(json!({"op": "correct_answer", "run": a, "answer": "42"})),
            [403, 403, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/class".into(),
            "GET",
            None,
            [403, 403, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/class/report?format=html".into(),
            "GET",
            None,
            [403, 403, 401, 401, 401, 200],
        ),
        (
            "/v1/k2/class/test-mode".into(),
            "PUT",
            Some(json!({"on": false})),
            [403, 403, 401, 401, 401, 200],
        ),
        (
            format!("/v1/k2/runs/{a}/reveal"),
            "POST",
            None,
            [200, 404, 401, 401, 401, 200],
        ),
        // Deletion last: the teacher's deletes the run.
        (
            format!("/v1/k2/runs/{teachers}"),
            "DELETE",
            None,
            [403, 403, 401, 401, 401, 204],
        ),
        (
            format!("/v1/k2/runs/{a}"),
            "DELETE",
            None,
            [403, 403, 401, 401, 401, 204],
        ),
    ];
    let mut mismatches = Vec::new();
    for (path, method, body, expected) in &table {
        for ((role, token), want) in roles.iter().zip(expected) {
            let got = class.call(*token, method, path, body.clone());
            if got.status != *want {
                mismatches.push(format!(
                    "{method} {path} as {role}: {} (expected {want}): {}",
                    got.status,
                    got.text().chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

#[test]
fn a_student_mode_run_keeps_the_solution_from_its_student_until_they_reveal_it() {
    let class = start_class(&[]);
    let (run, streamed) = class.solve(&class.alice, "What is 12 + 30?", true);
    assert_no_solution(&streamed, "the live stream");
    assert!(
        kinds(&streamed).contains("final_answer"),
        "{:?}",
        kinds(&streamed)
    );
    let whole = class.events(TOKEN, run);
    let answer = whole.iter().find_map(|e| match &e.kind {
        RunEvent::FinalAnswer { answer, .. } => answer.clone(),
        _ => None,
    });
    assert!(
        kinds(&whole).contains("candidate_delta"),
        "the teacher sees everything"
    );

    // Every other way to the run says the same.
    assert_no_solution(&class.events(&class.alice, run), "/events");
    let shown = class
        .call(
            Some(&class.alice),
            "GET",
            &format!("/v1/k2/runs/{run}"),
            None,
        )
        .json();
    assert_eq!(
        (&shown["plan"], &shown["answer"]),
        (&Value::Null, &Value::Null),
        "{shown}"
    );
    assert_eq!(shown["student_mode"], true);
    // The teacher's correction is the answer too: the student learns only that there is one.
    let corrected = class.call(
        Some(TOKEN),
        "POST",
        "/v1/k2/history",
        Some(json!({"op": "correct_answer", "run": run, "answer": "forty-two"})),
    );
    assert_eq!(corrected.status, 200, "{}", corrected.text());
    for (path, body) in [
        (format!("/v1/k2/runs/{run}"), None),
        (
            "/v1/k2/history".to_owned(),
            Some(json!({"op": "record", "run": run})),
        ),
    ] {
        let method = if body.is_some() { "POST" } else { "GET" };
        let seen = class.call(Some(&class.alice), method, &path, body);
        assert_eq!(seen.status, 200, "{path}: {}", seen.text());
        assert!(
            !seen.text().contains("forty-two"),
            "{path}: {}",
            seen.text()
        );
        assert!(
            seen.json()["correction"].is_object(),
            "{path}: {}",
            seen.text()
        );
    }
    let listed = class
        .call(Some(&class.alice), "GET", "/v1/k2/runs", None)
        .json();
    assert_eq!(listed["runs"][0]["id"], run);
    assert_eq!(listed["runs"][0]["answer"], Value::Null);
    assert_eq!(listed["runs"][0]["owner"]["name"], "alice");
    let teacher_list = class.call(Some(TOKEN), "GET", "/v1/k2/runs", None).json();
    assert_eq!(teacher_list["runs"][0]["answer"], json!(answer));
    if let Some(answer) = answer.as_deref().filter(|a| a.len() >= 2) {
        // A search of the answer's words finds nothing: students search their problems only.
        let found = class
            .call(
                Some(&class.alice),
                "GET",
                &format!("/v1/k2/runs?q={answer}"),
                None,
            )
            .json();
        assert!(
            found["runs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| !r.to_string().contains(answer)),
            "{found}"
        );
    }

    // A hint opened is answered whole, and from then on is in the student's replay.
    let ladder: Vec<_> = whole
        .iter()
        .filter_map(|e| match &e.kind {
            RunEvent::Hint(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    let opened = class
        .call(
            Some(&class.alice),
            "POST",
            "/v1/k2/history",
            Some(json!({"op": "open_hint", "run": run, "level": 1})),
        )
        .json();
    assert_eq!(opened["levels"], json!([1]));
    if let Some(first) = ladder.first() {
        assert_eq!(opened["hint"]["text"], json!(first.text));
        let replay = class.events(&class.alice, run);
        let texts: Vec<_> = replay
            .iter()
            .filter_map(|e| match &e.kind {
                RunEvent::Hint(h) => Some((h.level, h.text.is_empty())),
                _ => None,
            })
            .collect();
        assert!(
            texts.iter().all(|&(level, empty)| empty == (level != 1)),
            "{texts:?}"
        );
    }
    let export = class.call(
        Some(&class.alice),
        "GET",
        &format!("/v1/k2/runs/{run}/export"),
        None,
    );
    assert_eq!(export.status, 403, "{}", export.text());

    // The reveal answers the whole run, is kept, and opens every route.
    let revealed = class.call(
        Some(&class.alice),
        "POST",
        &format!("/v1/k2/runs/{run}/reveal"),
        None,
    );
    assert_eq!(revealed.status, 200);
    let revealed: Vec<Event> = serde_json::from_value(revealed.json()).unwrap();
    assert_eq!(revealed, whole);
    assert_eq!(class.events(&class.alice, run), whole);
    let export = class.call(
        Some(&class.alice),
        "GET",
        &format!("/v1/k2/runs/{run}/export"),
        None,
    );
    assert_eq!(export.status, 200);
    // A student added while the server runs is listed (with no runs yet); their name, the
    // teacher's text, is escaped in the report.
    roster_add(&class.roster, "Eve <img src=x onerror=alert(1)>");
    std::thread::sleep(Duration::from_millis(1200));
    let report = class.call(Some(TOKEN), "GET", "/v1/k2/class/report?format=html", None);
    assert_eq!(report.status, 200, "{}", report.text());
    let report = report.text();
    assert!(
        report.contains("alice") && report.contains("Eve &lt;img"),
        "{report}"
    );
    assert!(!report.contains("<img"), "{report}");
    let view = class.call(Some(TOKEN), "GET", "/v1/k2/class", None).json();
    assert_eq!(
        view["students"][2]["name"],
        "Eve <img src=x onerror=alert(1)>"
    );
    let alice = &view["students"][0];
    assert_eq!(alice["name"], "alice");
    assert!(alice["runs"][0]["revealed_at"].is_i64(), "{view}");
    assert_eq!(alice["runs"][0]["hints_opened"], 1);
    assert_eq!(view["students"][1]["name"], "bob");
    assert_eq!(view["students"][1]["runs"], json!([]));
}

#[test]
fn a_reveal_during_the_run_answers_what_was_held_back_and_the_rest_streams_whole() {
    let class = start_class(&[]);
    let run = json!({
        "problem": "What is 7 times 8?",
        "settings": {"candidates": 2, "plan": true, "plan_max_tokens": 32,
                     "student": true, "sampling": {"max_tokens": 96, "seed": 4}}
    });
    let body = serde_json::to_vec(&run).unwrap();
    let mut stream = TcpStream::connect(class.server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write_request(
        &mut stream,
        "POST",
        "/v1/k2/runs",
        &[bearer(&class.alice)],
        &body,
    );
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut id = None;
    let mut line = String::new();
    // The head, then events until the candidates start.
    let mut before = Vec::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if let Some(value) = line.strip_prefix("x-k2-run:") {
            id = Some(value.trim().parse::<i64>().unwrap());
        }
        if let Some(data) = line.strip_prefix("data:") {
            let event: Event = serde_json::from_str(data.trim()).unwrap();
            let solving = matches!(event.kind, RunEvent::Stage { .. }) && data.contains("solving");
            before.push(event);
            if solving {
                break;
            }
        }
    }
    let id = id.expect("the run's id header");
    let revealed = class.call(
        Some(&class.alice),
        "POST",
        &format!("/v1/k2/runs/{id}/reveal"),
        None,
    );
    assert_eq!(revealed.status, 200, "{}", revealed.text());
    let revealed: Vec<Event> = serde_json::from_value(revealed.json()).unwrap();
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(data) = line.strip_prefix("data:") {
            let event: Event = serde_json::from_str(data.trim()).unwrap();
            let last = event.kind.is_terminal();
            after.push(event);
            if last {
                break;
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    assert_no_solution(&before, "before the reveal");
    // What the reveal answered and what streamed after it are the whole run, each event once.
    let mut together: Vec<Event> = revealed.clone();
    let seen: BTreeSet<u64> = revealed.iter().map(|e| e.seq).collect();
    together.extend(after.iter().filter(|e| !seen.contains(&e.seq)).cloned());
    together.sort_by_key(|e| e.seq);
    class.wait_stored(id);
    let whole = class.events(TOKEN, id);
    assert_eq!(
        together,
        whole,
        "revealed {} + streamed {}",
        revealed.len(),
        after.len()
    );
    // The stream itself never repeats an event (what it sent before the reveal, filtered,
    // may still have been on its way when the reveal answered).
    let streamed: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert!(streamed.windows(2).all(|w| w[0] < w[1]), "{streamed:?}");
}

#[test]
fn authors_come_from_tokens_and_run_ids_are_never_reused() {
    let class = start_class(&["--teacher-name", "Ms. Rivera"]);
    let (first, _) = class.solve(TOKEN, "What is 1 + 1?", false);
    let (second, _) = class.solve(TOKEN, "What is 2 + 2?", false);
    let notes = class
        .call(
            Some(TOKEN),
            "POST",
            &format!("/v1/k2/runs/{first}/notes"),
            Some(json!({"text": "Good", "author": "The Principal"})),
        )
        .json();
    assert_eq!(notes[0]["author"], "Ms. Rivera", "{notes}");
    let corrected = class
        .call(
            Some(TOKEN),
            "POST",
            "/v1/k2/history",
            Some(json!({"op": "correct_answer", "run": first, "answer": "2", "author": "bob"})),
        )
        .json();
    assert_eq!(
        corrected["correction"]["author"], "Ms. Rivera",
        "{corrected}"
    );

    let deleted = class.call(
        Some(TOKEN),
        "DELETE",
        &format!("/v1/k2/runs/{second}"),
        None,
    );
    assert_eq!(deleted.status, 204);
    let (third, _) = class.solve(&class.bob, "What is 3 + 3?", false);
    assert!(
        third > second,
        "the deleted run's id {second} was handed out again"
    );
    // The old id still leads nowhere: a client holding it cannot write on bob's run.
    let stale = class.call(
        Some(TOKEN),
        "POST",
        &format!("/v1/k2/runs/{second}/attempts"),
        Some(json!({"answer": "4"})),
    );
    assert_eq!(stale.status, 404);
}

#[test]
fn test_mode_closes_hints_and_solutions_and_forces_student_mode_until_lifted() {
    let class = start_class(&[]);
    let on = class.call(
        Some(TOKEN),
        "PUT",
        "/v1/k2/class/test-mode",
        Some(json!({"on": true})),
    );
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["test_mode"], true);
    let me = class
        .call(Some(&class.bob), "GET", "/v1/k2/me", None)
        .json();
    assert_eq!(
        (
            &me["role"],
            &me["name"],
            &me["test_mode"],
            &me["student_mode_locked"]
        ),
        (&json!("student"), &json!("bob"), &json!(true), &json!(true))
    );
    // Bob asks for an ordinary run: the test makes it a student-mode one.
    let (run, streamed) = class.solve(&class.bob, "What is 9 + 9?", false);
    assert_no_solution(&streamed, "a run during the test");
    assert!(!kinds(&streamed).contains("hint"), "hints during the test");
    for (path, body) in [
        (format!("/v1/k2/runs/{run}/reveal"), None),
        (
            "/v1/k2/history".to_owned(),
            Some(json!({"op": "open_hint", "run": run, "level": 1})),
        ),
    ] {
        let refused = class.call(Some(&class.bob), "POST", &path, body);
        assert_eq!(refused.status, 403, "{path}: {}", refused.text());
        assert!(refused.text().contains("test"), "{}", refused.text());
    }
    // Answers and work are kept for the teacher, without a verdict a student could guess by.
    for body in [
        json!({"op": "check_attempt", "run": run, "answer": "18"}),
        json!({"op": "check_work", "run": run, "work": "9 + 9 = 18"}),
    ] {
        let held = class.call(Some(&class.bob), "POST", "/v1/k2/history", Some(body));
        assert_eq!(held.status, 200, "{}", held.text());
        let held = held.json();
        assert!(
            held["held_for_test"].as_str().unwrap().contains("teacher"),
            "{held}"
        );
        assert!(
            held.get("check").is_none() && held["kept"].is_i64(),
            "{held}"
        );
    }
    let view = class.call(Some(TOKEN), "GET", "/v1/k2/class", None).json();
    let counts = &view["students"][1]["runs"][0]["attempts"];
    let total: i64 = ["right", "wrong", "unsure"]
        .iter()
        .map(|k| counts[k].as_i64().unwrap())
        .sum();
    assert_eq!(
        total, 1,
        "the teacher sees the kept attempt's verdict: {view}"
    );
    let off = class.call(
        Some(TOKEN),
        "PUT",
        "/v1/k2/class/test-mode",
        Some(json!({"on": false})),
    );
    assert_eq!(off.json()["test_mode"], false);
    let revealed = class.call(
        Some(&class.bob),
        "POST",
        &format!("/v1/k2/runs/{run}/reveal"),
        None,
    );
    assert_eq!(revealed.status, 200, "{}", revealed.text());
}

#[test]
fn the_lab_lock_makes_every_student_run_a_student_mode_run_and_the_roster_is_private() {
    let class = start_class(&["--lock-student-mode", "--hint-levels", "1"]);
    let (run, streamed) = class.solve(&class.alice, "What is 4 + 4?", false);
    assert_no_solution(&streamed, "a locked lab's run");
    let me = class
        .call(Some(&class.alice), "GET", "/v1/k2/me", None)
        .json();
    assert_eq!(
        (&me["student_mode_locked"], &me["hint_levels"]),
        (&json!(true), &json!(1))
    );
    let hint = |level: u32| {
        class.call(
            Some(&class.alice),
            "POST",
            "/v1/k2/history",
            Some(json!({"op": "open_hint", "run": run, "level": level})),
        )
    };
    assert_eq!(hint(1).status, 200);
    let second = hint(2);
    assert_eq!(second.status, 403, "{}", second.text());
    assert!(second.text().contains("1 hint"), "{}", second.text());
    // One student cannot take the whole batch.
    let greedy = class.call(
        Some(&class.alice),
        "POST",
        "/v1/k2/runs",
        Some(json!({"problem": "1 + 1?", "settings": {"candidates": 5}})),
    );
    assert_eq!(greedy.status, 400, "{}", greedy.text());
    assert!(greedy.text().contains("at most 4"), "{}", greedy.text());
    // The teacher is never locked.
    let (_, teachers) = class.solve(TOKEN, "What is 4 + 4?", false);
    assert!(kinds(&teachers).contains("candidate_delta"));

    let listed = k2()
        .args(["serve", "roster", "list", "--roster"])
        .arg(&class.roster)
        .output()
        .unwrap();
    let names = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(names.lines().collect::<Vec<_>>(), ["alice", "bob"]);
    let file = std::fs::read_to_string(&class.roster).unwrap();
    assert!(
        !file.contains(&class.alice) && !file.contains(&class.bob),
        "{file}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&class.roster)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // A class needs its history; a roster file that is wrong stops the server with why.
    let refused = k2()
        .args(["serve", "--model", "x", "--no-history", "--roster"])
        .arg(&class.roster)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--no-history"));
    let bad = class.roster.with_file_name("bad.toml");
    let mut file = std::fs::File::create(&bad).unwrap();
    writeln!(file, "[students]\nalice = \"short\"").unwrap();
    let refused = k2()
        .arg("serve")
        .arg("--model")
        .arg(smollm())
        .args(["--port", "0", "--token", TOKEN, "--db"])
        .arg(bad.with_file_name("bad.db"))
        .arg("--roster")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("at least 16"), "{said}");
}
