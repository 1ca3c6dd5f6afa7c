//! Session databases K2 Tutor did not write as it expects, through the real `k2` binary on real
//! SQLite files: text that is not UTF-8 in stored rows (SQLite's integrity check accepts it),
//! another program's database, a migration changed under a database. No panic; the good rows
//! are shown and the bad ones named; `recover` quarantines only the bad values; a file that is
//! not ours is refused and left byte for byte as it was.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k2_protocol::{Event, RunEvent, RunRequest, RunSettings};
use k2_store::{RunConfig, RunRecorder, RunStatus, Store, APPLICATION_ID};
use sqlx::{Connection, Row, SqliteConnection};

fn k2_history(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k2"))
        .args(["history", "--db", db.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 0 and no panic, or the test fails showing what `k2` printed.
fn succeeded(output: &Output) -> &Output {
    assert!(
        output.status.success() && !stderr(output).contains("panicked"),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    output
}

/// A clear error: exit 1, no panic, and a message containing every one of `words`.
fn refused(output: &Output, words: &[&str]) -> String {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    for word in words {
        assert!(message.contains(word), "`{word}` missing from: {message}");
    }
    message
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn config() -> RunConfig {
    RunConfig {
        solver: "smollm2-135m-instruct-q4_1".into(),
        planner: None,
        draft: None,
        device: "cpu".into(),
        settings: RunSettings::default(),
    }
}

/// Three finished runs in one session (problems about alpha, beta, gamma), each with its
/// `started` event, and a teacher's note on the third. Returns the session's id.
fn seed(db: &Path) -> i64 {
    runtime().block_on(async {
        let store = Store::open(db).await.unwrap();
        for problem in [
            "alpha: what is 2 + 2?",
            "beta: what is 3 + 3?",
            "gamma: what is 4 + 4?",
        ] {
            let run = store
                .start_typed_run("Homework", problem, &config(), Default::default())
                .await
                .unwrap();
            let recorder = RunRecorder::start(&store, run);
            recorder.record(&Event {
                seq: 0,
                elapsed_ms: 0,
                kind: RunEvent::Started {
                    request: RunRequest::new(problem),
                },
            });
            recorder.finish().await.unwrap();
            store.set_run_status(run, RunStatus::Done).await.unwrap();
        }
        store.add_note(3, None, None, "well done").await.unwrap();
        let session = store.run(1).await.unwrap().summary.session_id;
        store.close().await;
        session
    })
}

/// A connection of another program to the file (no K2 code involved), created if missing.
async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap()
}

/// Runs `sql` on the file as another program would.
fn raw(db: &Path, sql: &str) {
    runtime().block_on(async {
        let mut conn = connect(db).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    })
}

/// The file's application id as SQLite reads it (the header, or a newer one in the WAL).
fn application_id(db: &Path) -> i32 {
    runtime().block_on(async {
        let mut conn = connect(db).await;
        let id = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        id
    })
}

fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.to_string_lossy().contains(".damaged-") && p.extension().is_some_and(|e| e == "db")
        })
        .collect()
}

#[test]
fn text_that_is_not_utf8_is_skipped_and_named_and_recover_quarantines_just_those_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let session = seed(&db);
    // Run 2's problem and the note on run 3 get bytes that are not UTF-8 ("beta" + C3 28).
    raw(
        &db,
        "UPDATE problems SET text = CAST(X'62657461C328' AS TEXT) WHERE id = 2; \
         UPDATE notes SET text = CAST(X'C328' AS TEXT) WHERE run_id = 3;",
    );

    let listed = k2_history(&db, &["list"]);
    let shown = stdout(succeeded(&listed));
    assert!(
        shown.contains("alpha") && shown.contains("gamma"),
        "{shown}"
    );
    let warning = stderr(&listed);
    assert!(
        warning.contains("skipped runs row 2: its problem cannot be read")
            && warning.contains("k2 history recover"),
        "{warning}"
    );
    let jsonl = stdout(succeeded(&k2_history(&db, &["list", "--format", "jsonl"])));
    assert_eq!(jsonl.lines().count(), 2, "{jsonl}");

    let found = k2_history(&db, &["search", "alpha"]);
    assert!(stdout(succeeded(&found)).contains("alpha"));
    let beta = k2_history(&db, &["search", "beta"]);
    assert!(stdout(succeeded(&beta)).contains("Nothing found"));
    assert!(
        stderr(&beta).contains("skipped runs row 2"),
        "{}",
        stderr(&beta)
    );

    // The bad run itself: a clear error naming it; the run with a bad note shows without it.
    refused(
        &k2_history(&db, &["show", "2"]),
        &["runs row 2", "k2 history recover"],
    );
    refused(
        &k2_history(&db, &["export", "--run", "2"]),
        &["runs row 2", "k2 history recover"],
    );
    let third = k2_history(&db, &["show", "3"]);
    assert!(stdout(succeeded(&third)).contains("run 3: done"));
    assert!(
        stderr(&third).contains("skipped notes row 1: its text"),
        "{}",
        stderr(&third)
    );
    let session_arg = session.to_string();
    let exported = k2_history(&db, &["export", "--session", &session_arg]);
    let document = stdout(succeeded(&exported));
    assert!(document.contains("alpha") && document.contains("gamma"));
    assert!(!document.contains("beta"));
    assert!(
        stderr(&exported).contains("runs row 2"),
        "{}",
        stderr(&exported)
    );
    succeeded(&k2_history(&db, &["sessions"]));

    // SQLite calls the file sound; recover still finds the two values and quarantines them.
    let recovered = k2_history(&db, &["recover"]);
    let report = stdout(succeeded(&recovered));
    assert!(
        report.contains("quarantined problems row 2: its text")
            && report.contains("quarantined notes row 1: its text"),
        "{report}"
    );
    assert!(!report.contains("healthy"), "{report}");
    assert!(
        damaged_copies(dir.path()).is_empty(),
        "the history was set aside"
    );

    // Everything reads again, nothing was lost: the original bytes are in the quarantine.
    let listed = k2_history(&db, &["list"]);
    let shown = stdout(succeeded(&listed));
    assert!(shown.contains("alpha") && shown.contains("beta\u{FFFD}(") && shown.contains("gamma"));
    assert!(!stderr(&listed).contains("warning"), "{}", stderr(&listed));
    assert!(stdout(succeeded(&k2_history(&db, &["show", "2"]))).contains("run 2: done"));
    let kept: Vec<(String, String, Vec<u8>)> = runtime().block_on(async {
        let mut conn = connect(&db).await;
        let rows =
            sqlx::query("SELECT table_name, row_key, original FROM quarantine ORDER BY table_name")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    });
    assert_eq!(
        kept,
        vec![
            ("notes".into(), "1".into(), vec![0xC3, 0x28]),
            ("problems".into(), "2".into(), b"beta\xC3\x28".to_vec()),
        ]
    );
    let again = k2_history(&db, &["recover"]);
    assert!(stdout(succeeded(&again)).contains("healthy; nothing to do"));
}

#[test]
fn an_event_that_is_not_utf8_is_left_out_of_the_replay_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    seed(&db);
    // Valid JSON to SQLite's json_valid, not UTF-8 to anyone else.
    raw(
        &db,
        "UPDATE events SET payload = CAST(X'7B2274797065223A22C328227D' AS TEXT) \
         WHERE run_id = 1 AND seq = 0;",
    );
    let shown = k2_history(&db, &["show", "1", "--events"]);
    assert_eq!(stdout(succeeded(&shown)).lines().count(), 0);
    assert!(
        stderr(&shown).contains("skipped events row run_id 1, seq 0: its payload"),
        "{}",
        stderr(&shown)
    );
    let report = stdout(succeeded(&k2_history(&db, &["recover"])));
    assert!(
        report.contains("quarantined events row run_id 1, seq 0: its payload"),
        "{report}"
    );
}

#[test]
fn another_programs_sqlite_file_is_refused_and_left_byte_for_byte_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("recipes.db");
    raw(
        &foreign,
        "PRAGMA journal_mode = DELETE; \
         CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT); \
         INSERT INTO recipes (name) VALUES ('pancakes');",
    );
    let before = std::fs::read(&foreign).unwrap();
    for args in [&["list"][..], &["recover"], &["sessions"]] {
        refused(
            &k2_history(&foreign, args),
            &[
                "recipes.db is not a K2 Tutor session database",
                "left untouched",
                "--db",
            ],
        );
    }
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        before,
        "the file was changed"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["recipes.db"], "no WAL, no copy set aside");

    // A database marked as another program's, even with no tables yet.
    let marked = dir.path().join("marked.db");
    raw(
        &marked,
        "PRAGMA application_id = 1234; CREATE TABLE t (x); DROP TABLE t;",
    );
    let before = std::fs::read(&marked).unwrap();
    refused(
        &k2_history(&marked, &["list"]),
        &["marked.db is not a K2 Tutor session database", "0x000004d2"],
    );
    assert_eq!(std::fs::read(&marked).unwrap(), before);

    // Another program that also keeps its schema with sqlx: its first migration is not ours.
    let other_sqlx = dir.path().join("other.db");
    raw(
        &other_sqlx,
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT); \
         INSERT INTO _sqlx_migrations VALUES (1, 'create users');",
    );
    let before = std::fs::read(&other_sqlx).unwrap();
    refused(
        &k2_history(&other_sqlx, &["list"]),
        &["other.db is not a K2 Tutor session database"],
    );
    assert_eq!(std::fs::read(&other_sqlx).unwrap(), before);
}

#[test]
fn our_databases_carry_our_application_id_and_older_ones_are_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    succeeded(&k2_history(&fresh, &["list"]));
    assert_eq!(application_id(&fresh), APPLICATION_ID);

    // A database made before the id existed: our schema, application id 0.
    let older = dir.path().join("older.db");
    seed(&older);
    raw(&older, "PRAGMA application_id = 0;");
    assert_eq!(application_id(&older), 0);
    assert!(stdout(succeeded(&k2_history(&older, &["list"]))).contains("gamma"));
    assert_eq!(application_id(&older), APPLICATION_ID);
}

#[test]
fn a_migration_changed_under_a_database_gets_words_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    seed(&db);
    raw(
        &db,
        "UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 2;",
    );
    let message = refused(
        &k2_history(&db, &["list"]),
        &[
            "different build of K2 Tutor",
            "schema step 2",
            "k2 history recover",
        ],
    );
    assert!(!message.contains("previously applied"), "{message}");
    let recovered = k2_history(&db, &["recover"]);
    assert!(stdout(succeeded(&recovered)).contains("Started a new session database"));
    assert_eq!(damaged_copies(dir.path()).len(), 1);
    succeeded(&k2_history(&db, &["list"]));
}

#[test]
fn a_classroom_server_lists_the_readable_runs_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("classroom.db");
    seed(&db);
    raw(
        &db,
        "UPDATE sessions SET title = CAST(X'C328' AS TEXT); \
         UPDATE runs SET answer = CAST(X'34C328' AS TEXT) WHERE id = 1;",
    );
    // Every run's session title is unreadable now, so fix one run's session to a good one.
    raw(
        &db,
        "INSERT INTO sessions (id, title, created_at, updated_at) VALUES (9, 'Good', 0, 0); \
         UPDATE runs SET session_id = 9 WHERE id IN (1, 3);",
    );
    let server = common::Server::start(&["--db", db.to_str().unwrap()]);
    let get = |path: &str| common::request(server.address, "GET", path, &[common::auth()], b"");
    let listed = get("/v1/k2/runs");
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    let ids: Vec<i64> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [3],
        "runs 1 (answer) and 2 (session title) are unreadable"
    );
    // The listing tells its reader what it left out (the UI shows it), row by row.
    let unreadable: Vec<&str> = listed["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_str().unwrap())
        .collect();
    assert_eq!(unreadable.len(), 2, "{listed}");
    assert!(
        unreadable
            .iter()
            .any(|row| row.starts_with("runs row 1: its answer")),
        "{listed}"
    );
    let shown = get("/v1/k2/runs/2");
    assert!(
        shown.status >= 400 && shown.text().contains("runs row 2"),
        "{}",
        shown.text()
    );
    assert_eq!(get("/v1/k2/runs/3").status, 200);
    assert_eq!(server.health()["status"], "ok");
    assert_eq!(get("/v1/k2/runs").status, 200, "the server still answers");
}
