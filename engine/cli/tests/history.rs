//! Runs stored by `k2 solve` with a real model: replay equals the live stream, a run killed
//! with SIGKILL mid-generation is found `interrupted` with every flushed event intact, and a
//! damaged database is reported and recovered without losing the old file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k2_protocol::{Event, RunView};
use k2_store::{RunStatus, Store};

fn smollm() -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join("smollm2-135m-instruct-q4_1.gguf");
    assert!(path.exists(), "run scripts/fetch-test-models.sh first");
    path
}

fn solve_command(db: &Path, max_tokens: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_k2"));
    command.args([
        "solve",
        "Prove that the sum of the first n odd numbers is n^2, then compute 1+3+5+...+99.",
        "--model",
        smollm().to_str().unwrap(),
        "--planner",
        "solver",
        "-n",
        "3",
        "--seed",
        "5",
        "--max-tokens",
        max_tokens,
        "--format",
        "jsonl",
        "--db",
        db.to_str().unwrap(),
    ]);
    command
}

/// The protocol events among `k2 solve --format jsonl` lines (the last line is a summary).
fn events_of(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .collect()
}

fn open(db: &Path) -> (tokio::runtime::Runtime, Store) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(Store::open(db)).unwrap();
    (runtime, store)
}

#[test]
fn a_stored_run_replays_exactly_as_it_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let out = solve_command(&db, "48").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let live = events_of(&lines);
    assert!(live.len() > 20, "a real run streams many events");

    let (runtime, store) = open(&db);
    let runs = runtime
        .block_on(store.list_runs(None, k2_store::PageRequest::first(10)))
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    let run = runs.items[0].id;
    assert_eq!(runs.items[0].status, RunStatus::Done);
    let stored = runtime.block_on(store.events(run)).unwrap();
    assert_eq!(stored, live);
    assert_eq!(
        runtime.block_on(store.replay(run)).unwrap(),
        RunView::replay(&live)
    );

    let shown = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args([
            "history",
            "--db",
            db.to_str().unwrap(),
            "show",
            &run.to_string(),
            "--events",
        ])
        .output()
        .unwrap();
    let shown_events = events_of(
        &String::from_utf8(shown.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>(),
    );
    assert_eq!(shown_events, live);
}

#[test]
fn a_run_killed_mid_generation_is_interrupted_with_every_flushed_event_intact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let mut child = solve_command(&db, "4000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let printed = printed.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                printed.lock().unwrap().push(line);
            }
        })
    };
    let started = Instant::now();
    while printed.lock().unwrap().len() < 120 {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the run streamed too little"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everything recorded before this point has had several flush intervals to reach the disk.
    let recorded_early = printed.lock().unwrap().len();
    std::thread::sleep(k2_store::FLUSH_INTERVAL * 4);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    reader.join().unwrap();
    let printed = events_of(&printed.lock().unwrap());

    let (runtime, store) = open(&db);
    runtime.block_on(store.integrity_check()).unwrap();
    let runs = runtime
        .block_on(store.list_runs(None, k2_store::PageRequest::first(10)))
        .unwrap();
    assert_eq!(runs.items[0].status, RunStatus::Interrupted);
    let stored = runtime.block_on(store.events(runs.items[0].id)).unwrap();
    assert!(
        stored.len() >= recorded_early,
        "{} events stored, {recorded_early} were recorded well before the kill",
        stored.len()
    );
    assert_eq!(
        stored[..],
        printed[..stored.len()],
        "stored events are the streamed ones, in order"
    );
    assert!(stored.iter().enumerate().all(|(i, e)| e.seq == i as u64));
}

#[test]
fn a_damaged_database_is_reported_and_recovered_keeping_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let garbage = b"this is not a database, it is a shopping list".repeat(200);
    std::fs::write(&db, &garbage).unwrap();
    let k2 = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_k2"))
            .args(["history", "--db", db.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let listed = k2(&["list"]);
    assert_eq!(listed.status.code(), Some(1));
    let message = String::from_utf8_lossy(&listed.stderr);
    assert!(
        message.contains("damaged") && message.contains("k2 history recover"),
        "{message}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "the file was changed");

    let recovered = k2(&["recover"]);
    assert!(
        recovered.status.success(),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), garbage);
    assert!(k2(&["list"]).status.success());
}
