//! The event log, history paging, search, notes, attempts and problem sets on real SQLite files.

mod common;

use common::{record_run, run_events, temp_store};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict, RunView};
use k2_store::export::{export_run, ExportFormat};
use k2_store::{PageRequest, RunRecorder, RunStatus, StoreError, FLUSH_INTERVAL};

#[tokio::test]
async fn every_event_kind_round_trips_and_replays_to_the_live_view() {
    let t = temp_store().await;
    let session = t.store.create_session("Homework").await.unwrap();
    let run = record_run(&t.store, session, "Roots of $x^2-5x+6$?", "6").await;
    let live = run_events("Roots of $x^2-5x+6$?", "6");
    let stored = t.store.events(run).await.unwrap();
    assert_eq!(stored, live);
    assert_eq!(t.store.replay(run).await.unwrap(), RunView::replay(&live));

    let detail = t.store.run(run).await.unwrap();
    assert_eq!(detail.summary.status, RunStatus::Done);
    assert_eq!(detail.summary.answer.as_deref(), Some("6"));
    assert!(detail.plan.unwrap().contains("Vieta"));
    assert!(detail.summary.finished_at.is_some());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", t.store.path().display()))
        .await
        .unwrap();
    let candidates: Vec<(i64, String)> = sqlx::query_as(
        "SELECT candidate, finish FROM candidates WHERE run_id = ? ORDER BY candidate",
    )
    .bind(run)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        candidates,
        vec![(0, "complete".into()), (1, "max_tokens".into())]
    );
    let ties: i64 =
        sqlx::query_scalar("SELECT count(*) FROM verdicts WHERE run_id = ? AND winner IS NULL")
            .bind(run)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(ties, 1);
}

#[tokio::test]
async fn events_are_on_disk_within_the_flush_interval_while_the_run_goes_on() {
    let t = temp_store().await;
    let session = t.store.create_session("s").await.unwrap();
    let problem = t
        .store
        .add_problem(&k2_store::NewProblem::typed("p"))
        .await
        .unwrap();
    let run = t
        .store
        .start_run(session, problem, &common::config(), Default::default())
        .await
        .unwrap();
    let recorder = RunRecorder::start(&t.store, run);
    let events = run_events("p", "1");
    for event in &events[..5] {
        recorder.record(event);
    }
    tokio::time::sleep(FLUSH_INTERVAL * 3).await;
    // Read through a separate connection, as another process would.
    let other = k2_store::Store::open(t.store.path()).await.unwrap();
    assert_eq!(other.events(run).await.unwrap(), events[..5].to_vec());
    assert_eq!(
        other.run(run).await.unwrap().summary.status,
        RunStatus::Running
    );
    drop(recorder); // never finished: the writer drains and marks the run failed
    tokio::time::sleep(FLUSH_INTERVAL * 3).await;
    let detail = other.run(run).await.unwrap();
    assert_eq!(detail.summary.status, RunStatus::Failed);
    assert!(detail.error.unwrap().contains("without a final event"));
}

#[tokio::test]
async fn runs_and_sessions_page_newest_first_without_gaps_or_repeats() {
    let t = temp_store().await;
    let a = t.store.create_session("A").await.unwrap();
    let b = t.store.create_session("B").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..23 {
        let session = if i % 3 == 0 { a } else { b };
        ids.push(record_run(&t.store, session, &format!("problem {i}"), "1").await);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let listed = t.store.list_runs(None, page).await.unwrap();
        assert!(listed.items.len() <= 10);
        seen.extend(listed.items.iter().map(|r| r.id));
        match listed.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let of_a = t
        .store
        .list_runs(Some(a), PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(of_a.items.len(), 8);
    assert!(of_a.items.iter().all(|r| r.session_title == "A"));

    let sessions = t
        .store
        .list_sessions(PageRequest::first(1), false)
        .await
        .unwrap();
    assert_eq!(sessions.items.len(), 1);
    let rest = t
        .store
        .list_sessions(
            PageRequest {
                limit: 5,
                after: sessions.next,
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_ne!(rest.items[0].id, sessions.items[0].id);
    assert_eq!(sessions.items[0].runs + rest.items[0].runs, 23);
    t.store.archive_session(a, true).await.unwrap();
    let unarchived = t
        .store
        .list_sessions(PageRequest::first(10), false)
        .await
        .unwrap();
    assert_eq!(
        unarchived.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![b]
    );
}

#[tokio::test]
async fn search_finds_latex_and_unicode_and_never_chokes_on_query_syntax() {
    let t = temp_store().await;
    let s = t.store.create_session("s").await.unwrap();
    let frac = record_run(
        &t.store,
        s,
        "Compute $\\frac{1}{2} + \\frac{1}{3}$.",
        "\\frac{5}{6}",
    )
    .await;
    let accents = record_run(
        &t.store,
        s,
        "Démontrer le théorème de Pythagore, ∀ x ∈ ℝ.",
        "1",
    )
    .await;
    let plain = record_run(&t.store, s, "How many apples are left?", "7").await;

    let ids =
        |hits: Vec<k2_store::SearchHit>| hits.into_iter().map(|h| h.run.id).collect::<Vec<_>>();
    assert_eq!(
        ids(t.store.search("\\frac{5}{6}", 10).await.unwrap()),
        vec![frac]
    );
    assert_eq!(
        ids(t.store.search("theoreme", 10).await.unwrap()),
        vec![accents]
    );
    assert_eq!(
        ids(t.store.search("THÉORÈME pythagore", 10).await.unwrap()),
        vec![accents]
    );
    assert_eq!(
        ids(t.store.search("apples", 10).await.unwrap()),
        vec![plain]
    );
    assert_eq!(
        t.store.search("vieta", 10).await.unwrap().len(),
        3,
        "plans are searched"
    );
    for hostile in [
        "\"",
        "NEAR(",
        "a OR",
        "*",
        "x AND NOT",
        "(((",
        "{}",
        "^",
        "-",
    ] {
        t.store.search(hostile, 10).await.unwrap();
    }
    let hit = &t.store.search("apples", 10).await.unwrap()[0];
    assert!(hit.snippet.contains("«apples»"), "{}", hit.snippet);
}

const RIGHT_UNANIMOUS: AttemptCheck = AttemptCheck {
    verdict: CheckVerdict::Right,
    basis: CheckBasis::Unanimous,
};

#[tokio::test]
async fn notes_and_attempts_are_kept_with_their_run_and_problem() {
    let t = temp_store().await;
    let s = t.store.create_session("s").await.unwrap();
    let run = record_run(&t.store, s, "2+2", "4").await;
    let problem = t.store.run(run).await.unwrap().problem.id;
    t.store
        .add_note(run, Some(9), Some("Ms. Noor"), "Good use of Vieta.")
        .await
        .unwrap();
    t.store
        .add_note(run, None, None, "Check the discriminant first.")
        .await
        .unwrap();
    let notes = t.store.notes(run).await.unwrap();
    assert_eq!(notes[0].seq, None, "whole-run notes come first");
    assert_eq!(notes[1].seq, Some(9));
    t.store
        .add_attempt(problem, Some(run), "4.0", Some(RIGHT_UNANIMOUS), Some(31.5))
        .await
        .unwrap();
    t.store
        .add_attempt(problem, Some(run), "5", Some(AttemptCheck::UNSURE), None)
        .await
        .unwrap();
    let attempts = t.store.attempts(problem).await.unwrap();
    assert_eq!(attempts[1].equivalent, Some(true));
    assert_eq!(attempts[1].check, Some(RIGHT_UNANIMOUS));
    // Unsure is kept as unsure: not as a wrong answer.
    assert_eq!(attempts[0].equivalent, None);
    assert_eq!(attempts[0].check, Some(AttemptCheck::UNSURE));
    let markdown = export_run(
        &t.store.load_run_export(run).await.unwrap(),
        ExportFormat::Markdown,
    );
    assert!(
        markdown.contains("Ms. Noor, at 0.3 s (event 9, candidate finished)"),
        "{markdown}"
    );
    t.store.delete_run(run).await.unwrap();
    assert!(t.store.notes(run).await.unwrap().is_empty());
    assert!(matches!(
        t.store.run(run).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(t.store.search("2+2", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn checked_work_is_kept_with_its_problem_and_outlives_its_run() {
    use k2_protocol::{WorkCertainty, WorkCheck, WorkIssueKind, WrongStep};
    let t = temp_store().await;
    let s = t.store.create_session("s").await.unwrap();
    let run = record_run(&t.store, s, "2+2", "4").await;
    let problem = t.store.run(run).await.unwrap().problem.id;
    let check = WorkCheck {
        steps: 2,
        first_wrong: Some(WrongStep {
            step: 2,
            text: "2 + 2 = 5".into(),
            kind: WorkIssueKind::Arithmetic,
            certainty: WorkCertainty::Sure,
            message: "Step 2: 2 + 2 = 5 does not hold; check this calculation.".into(),
        }),
        final_answer: CheckVerdict::Wrong,
        basis: CheckBasis::Unanimous,
        summary: "Step 2: 2 + 2 = 5 does not hold; check this calculation.".into(),
        model_doubt: None,
        reviewed_by_model: false,
    };
    let id = t
        .store
        .add_work_check(problem, Some(run), "1 + 1 = 2\n2 + 2 = 5", &check)
        .await
        .unwrap();
    let kept = t.store.work_checks(problem).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].id, kept[0].run_id), (id, Some(run)));
    assert_eq!(kept[0].check, check);
    assert_eq!(kept[0].work, "1 + 1 = 2\n2 + 2 = 5");
    // The run goes, the student's work stays with the problem.
    t.store.delete_run(run).await.unwrap();
    let kept = t.store.work_checks(problem).await.unwrap();
    assert_eq!(kept[0].run_id, None);
}

#[tokio::test]
async fn the_verifier_models_doubt_is_exported_apart_from_the_numbers_verdict() {
    use k2_protocol::{WorkCertainty, WorkCheck, WorkIssueKind, WrongStep};
    use k2_store::export::{export_run, ExportFormat};
    let t = temp_store().await;
    let s = t.store.create_session("s").await.unwrap();
    let run = record_run(&t.store, s, "Is 7 prime?", "yes").await;
    let problem = t.store.run(run).await.unwrap().problem.id;
    let check = WorkCheck {
        steps: 2,
        first_wrong: None,
        final_answer: CheckVerdict::Unsure,
        basis: CheckBasis::Unsure,
        summary: "No step is wrong by the numbers.".into(),
        model_doubt: Some(WrongStep {
            step: 1,
            text: "7 is even".into(),
            kind: WorkIssueKind::ModelDoubt,
            certainty: WorkCertainty::Unsure,
            message: "Re-check whether 7 is divisible by 2.".into(),
        }),
        reviewed_by_model: true,
    };
    t.store
        .add_work_check(problem, Some(run), "7 is even\nso it is not prime", &check)
        .await
        .unwrap();
    let export = t.store.load_run_export(run).await.unwrap();
    let markdown = export_run(&export, ExportFormat::Markdown);
    let said = markdown
        .lines()
        .find(|l| l.contains("Re-check whether 7 is divisible by 2."))
        .unwrap_or_else(|| panic!("no doubt in:\n{markdown}"));
    assert!(said.contains("step 1"), "{said}");
    assert!(said.contains("not verified"), "{said}");
}

#[tokio::test]
async fn problem_sets_import_all_or_nothing_and_export_as_they_came() {
    let t = temp_store().await;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/gsm8k-dev.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    let report = t
        .store
        .import_problem_set("gsm8k-dev", &text, false)
        .await
        .unwrap();
    assert_eq!(
        report.imported,
        text.lines().filter(|l| !l.trim().is_empty()).count()
    );
    let exported = t.store.export_problem_set("gsm8k-dev").await.unwrap();
    for (original, back) in text.lines().zip(exported.lines()) {
        let original: serde_json::Value = serde_json::from_str(original).unwrap();
        let back: serde_json::Value = serde_json::from_str(back).unwrap();
        for field in ["id", "problem", "answer"] {
            assert_eq!(original[field].as_str(), back[field].as_str(), "{field}");
        }
    }
    // Importing again updates in place.
    let again = t
        .store
        .import_problem_set("gsm8k-dev", &text, false)
        .await
        .unwrap();
    assert_eq!(again.imported, report.imported);
    assert_eq!(
        t.store.problem_sets().await.unwrap(),
        vec![("gsm8k-dev".into(), report.imported as i64)]
    );

    let broken = format!(
        "{}\n{{\"id\": \"x\"}}\nnot json\n",
        text.lines().next().unwrap()
    );
    let error = t
        .store
        .import_problem_set("broken", &broken, false)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("line 2") && message.contains("line 3"),
        "{message}"
    );
    assert!(t
        .store
        .problem_sets()
        .await
        .unwrap()
        .iter()
        .all(|(name, _)| name != "broken"));
    let partial = t
        .store
        .import_problem_set("broken", &broken, true)
        .await
        .unwrap();
    assert_eq!((partial.imported, partial.skipped.len()), (1, 2));
}
