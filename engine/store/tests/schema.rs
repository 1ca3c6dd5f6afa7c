//! Opening databases: fresh, from every earlier schema version, written by a newer version,
//! damaged, and left with runs `running` by a crash.

mod common;

use std::borrow::Cow;

use common::{config, record_run, run_events, temp_store};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict};
use k2_store::{
    latest_schema_version, NewProblem, RunId, RunRecorder, RunStatus, Store, StoreError, MIGRATOR,
};
use sqlx::migrate::Migrator;

fn migrator_up_to(version_count: usize) -> Migrator {
    Migrator {
        migrations: Cow::Owned(MIGRATOR.migrations[..version_count].to_vec()),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

#[tokio::test]
async fn a_new_database_gets_the_latest_schema_and_passes_the_integrity_check() {
    let t = temp_store().await;
    assert_eq!(
        t.store.schema_version().await.unwrap(),
        latest_schema_version()
    );
    assert!(latest_schema_version() >= 3);
    t.store.integrity_check().await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(
            &sqlx::SqlitePool::connect(&format!("sqlite://{}", t.store.path().display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn every_earlier_schema_version_upgrades_keeping_its_runs_searchable() {
    for earlier in 1..MIGRATOR.migrations.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = Store::open_with(&path, &migrator_up_to(earlier))
                .await
                .unwrap();
            assert_eq!(old.schema_version().await.unwrap(), earlier as i64);
            let session = old.create_session("Algebra homework").await.unwrap();
            record_run_in_old_schema(
                &old,
                session,
                "Find the product of the roots of $x^2-5x+6$.",
                "6",
            )
            .await;
            old.close().await;
        }
        let store = Store::open(&path).await.unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            latest_schema_version()
        );
        let runs = store
            .list_runs(None, k2_store::PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(runs.items.len(), 1, "from version {earlier}");
        assert_eq!(runs.items[0].status, RunStatus::Done);
        assert_eq!(
            store.events(runs.items[0].id).await.unwrap().len(),
            common::run_events("", "6").len()
        );
        let hits = store.search("Vieta", 10).await.unwrap();
        assert_eq!(
            hits.len(),
            1,
            "plans stored at version {earlier} are searchable"
        );
        store.integrity_check().await.unwrap();
    }
}

#[tokio::test]
async fn attempts_kept_before_checks_had_a_basis_still_read_and_new_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let problem = {
        let old = Store::open_with(&path, &migrator_up_to(3)).await.unwrap();
        let session = old.create_session("s").await.unwrap();
        let (run, problem) = record_run_in_old_schema(&old, session, "2+2", "4").await;
        old.close().await;
        // An attempt as schema 3 wrote it: no verdict, no basis.
        let writer = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO attempts (problem_id, run_id, answer, equivalent, seconds, created_at) \
             VALUES (?, ?, '5', 0, NULL, 1)",
        )
        .bind(problem)
        .bind(run)
        .execute(&writer)
        .await
        .unwrap();
        writer.close().await;
        problem
    };
    let store = Store::open(&path).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        latest_schema_version()
    );
    let check = AttemptCheck {
        verdict: CheckVerdict::Wrong,
        basis: CheckBasis::AnswerKey,
    };
    store
        .add_attempt(problem, None, "3", Some(check), None)
        .await
        .unwrap();
    let attempts = store.attempts(problem).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (attempts[0].check, attempts[0].equivalent),
        (Some(check), Some(false))
    );
    assert_eq!(attempts[1].answer, "5");
    assert_eq!(
        (attempts[1].check, attempts[1].equivalent),
        (None, Some(false))
    );
    // The schema refuses a verdict or a basis it does not know.
    let bad = sqlx::query("UPDATE attempts SET basis = 'guess' WHERE answer = '5'")
        .execute(
            &sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
        .await;
    assert!(bad.is_err());
    store.integrity_check().await.unwrap();
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let t = temp_store().await;
    let path = t.store.path().to_path_buf();
    let writer = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(&writer)
    .await
    .unwrap();
    // Every connection closed (and the WAL checkpointed) before the file is read as "before".
    writer.close().await;
    t.store.clone().close().await;
    let before = std::fs::read(&path).unwrap();
    let error = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NewerSchema { found: 99, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("newer K2 Tutor") && message.contains("untouched"),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
}

#[tokio::test]
async fn a_damaged_file_gives_a_clear_error_and_can_be_set_aside_for_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let error = Store::open(&path).await.unwrap_err();
    assert!(error.is_corrupt(), "{error:?}");
    assert!(error.to_string().contains("k2 history recover"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    let (store, kept) = Store::set_aside_and_start_fresh(&path).await.unwrap();
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        garbage,
        "the old file is kept as it was"
    );
    store.integrity_check().await.unwrap();
    assert_eq!(
        store
            .list_runs(None, k2_store::PageRequest::first(5))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
}

#[tokio::test]
async fn a_database_truncated_mid_file_is_reported_as_damaged() {
    let t = temp_store().await;
    let session = t.store.create_session("s").await.unwrap();
    for i in 0..40 {
        record_run(
            &t.store,
            session,
            &format!("problem {i} {}", "x".repeat(2000)),
            "1",
        )
        .await;
    }
    let path = t.store.path().to_path_buf();
    t.store.clone().close().await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let result = match Store::open(&path).await {
        Ok(store) => store.integrity_check().await,
        Err(e) => Err(e),
    };
    let error = result.unwrap_err();
    assert!(error.is_corrupt(), "{error:?}");
}

#[tokio::test]
async fn runs_left_running_by_a_dead_process_are_marked_interrupted_at_the_next_start() {
    let t = temp_store().await;
    let session = t.store.create_session("s").await.unwrap();
    let problem = t
        .store
        .add_problem(&NewProblem::typed("1+1"))
        .await
        .unwrap();
    let ours = t
        .store
        .start_run(session, problem, &config(), Default::default())
        .await
        .unwrap();
    let orphan = t
        .store
        .start_run(session, problem, &config(), Default::default())
        .await
        .unwrap();
    // A process id that cannot exist (above Linux's pid_max).
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", t.store.path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET writer_pid = 99999999 WHERE id = ?")
        .bind(orphan)
        .execute(&pool)
        .await
        .unwrap();
    let reopened = Store::open(t.store.path()).await.unwrap();
    let status = |id| {
        let store = reopened.clone();
        async move { store.run(id).await.unwrap().summary.status }
    };
    assert_eq!(status(orphan).await, RunStatus::Interrupted);
    assert_eq!(
        status(ours).await,
        RunStatus::Running,
        "this process is alive"
    );
}

/// [`record_run`] into a database of a schema before version 8 (no owners, no id floor), as
/// the program of that time started a run; answers the run's and its problem's ids.
pub async fn record_run_in_old_schema(
    store: &Store,
    session: i64,
    problem: &str,
    answer: &str,
) -> (RunId, i64) {
    let problem_id = store
        .add_problem(&NewProblem::typed(problem))
        .await
        .unwrap();
    let writer = sqlx::SqlitePool::connect(&format!("sqlite://{}", store.path().display()))
        .await
        .unwrap();
    let run = sqlx::query(
        "INSERT INTO runs (session_id, problem_id, config, status, started_at, heartbeat_at) \
         VALUES (?, ?, ?, 'running', 1, 1)",
    )
    .bind(session)
    .bind(problem_id)
    .bind(serde_json::to_string(&config()).unwrap())
    .execute(&writer)
    .await
    .unwrap()
    .last_insert_rowid();
    writer.close().await;
    let recorder = RunRecorder::start(store, run);
    for event in run_events(problem, answer) {
        recorder.record(&event);
    }
    recorder.finish().await.unwrap();
    (run, problem_id)
}
