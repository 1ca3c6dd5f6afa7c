//! The front ends' history operations on a real SQLite file with recorded runs.

#[path = "../../store/tests/common/mod.rs"]
mod common;

use common::{confident_run_events, record_events, record_run, temp_store};
use k2_history::{HistoryError, HistoryReply, HistoryRequest, NewNote};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict};
use serde_json::json;

#[tokio::test]
async fn lists_newest_first_and_searches_with_snippets() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let first = record_run(&t.store, session, "Find $\\frac{5}{6}$ of 12.", "10").await;
    let second = record_run(&t.store, session, "What is 7 squared?", "49").await;

    let all = k2_history::list(&t.store, None).await.unwrap();
    assert_eq!(
        all.iter().map(|i| i.run.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert!(all.iter().all(|i| i.snippet.is_none()));
    // Blank queries list everything.
    assert_eq!(k2_history::list(&t.store, Some("  ")).await.unwrap(), all);

    let hits = k2_history::list(&t.store, Some("squared")).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].run.id, second);
    assert!(hits[0].snippet.as_deref().unwrap().contains("«squared»"));
    // LaTeX and query syntax are searched for, never parsed.
    let hits = k2_history::list(&t.store, Some("\\frac{5}{6}"))
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|i| i.run.id).collect::<Vec<_>>(), [first]);
    assert!(k2_history::list(&t.store, Some("NEAR( OR \""))
        .await
        .unwrap()
        .is_empty());
}

fn check(verdict: CheckVerdict, basis: CheckBasis) -> AttemptCheck {
    AttemptCheck { verdict, basis }
}

#[tokio::test]
async fn attempts_are_checked_with_a_basis_and_kept_with_it() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    // Both candidates finished with 3/4: the tutor is confident.
    let run = record_events(
        &t.store,
        session,
        "Half of 3/2?",
        confident_run_events("Half of 3/2?", "\\frac{3}{4}"),
    )
    .await;
    let right = k2_history::check_attempt(&t.store, run, " 0.75 ")
        .await
        .unwrap();
    assert_eq!(
        right.check,
        check(CheckVerdict::Right, CheckBasis::Unanimous)
    );
    assert_eq!(right.equivalent, Some(true));
    let wrong = k2_history::check_attempt(&t.store, run, "4/3")
        .await
        .unwrap();
    assert_eq!(
        wrong.check,
        check(CheckVerdict::Wrong, CheckBasis::Unanimous)
    );
    assert_eq!(wrong.equivalent, Some(false));

    let problem = t.store.run(run).await.unwrap().problem.id;
    let kept = t.store.attempts(problem).await.unwrap();
    assert_eq!(
        kept.iter()
            .map(|a| (a.answer.as_str(), a.check, a.run_id))
            .collect::<Vec<_>>(),
        [
            ("4/3", Some(wrong.check), Some(run)),
            ("0.75", Some(right.check), Some(run))
        ]
    );

    // A known answer (an answer key) wins over the run's, even a unanimous one.
    t.store.set_known_answer(problem, "4/3").await.unwrap();
    let keyed = k2_history::check_attempt(&t.store, run, "8/6")
        .await
        .unwrap();
    assert_eq!(
        keyed.check,
        check(CheckVerdict::Right, CheckBasis::AnswerKey)
    );

    assert!(matches!(
        k2_history::check_attempt(&t.store, run, "   ").await,
        Err(HistoryError::BadRequest(_))
    ));
    assert!(matches!(
        k2_history::check_attempt(&t.store, run + 100, "1").await,
        Err(HistoryError::NotFound(id)) if id == run + 100
    ));
}

#[tokio::test]
async fn work_is_checked_against_what_the_tutor_trusts_and_kept() {
    use k2_protocol::{WorkCertainty, WorkIssueKind};
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let problem_text = "Half of 3/2?";
    let run = record_events(
        &t.store,
        session,
        problem_text,
        confident_run_events(problem_text, "\\frac{3}{4}"),
    )
    .await;
    // A wrong calculation: named, sure, and neither 3/4 nor 0.75 is in the reply.
    let HistoryReply::Work(checked) = k2_history::dispatch(
        &t.store,
        HistoryRequest::CheckWork {
            run,
            work: "$\\frac{3}{2} \\div 2 = \\frac{3}{2}$".into(),
        },
    )
    .await
    .unwrap() else {
        panic!("checked work answers its check")
    };
    let wrong = checked.check.first_wrong.clone().unwrap();
    assert_eq!(wrong.step, 1);
    assert_eq!(wrong.kind, WorkIssueKind::Arithmetic);
    assert_eq!(wrong.certainty, WorkCertainty::Sure);
    assert_eq!(checked.check.basis, CheckBasis::Unanimous);
    let reply = serde_json::to_string(&checked).unwrap();
    assert!(
        !reply.contains("0.75") && !reply.contains("{3}{4}"),
        "{reply}"
    );
    let problem = t.store.run(run).await.unwrap().problem.id;
    let kept = t.store.work_checks(problem).await.unwrap();
    assert_eq!(
        (kept[0].id, &kept[0].check),
        (checked.stored, &checked.check)
    );
    // Right work: no wrong step, the final answer matches.
    let right = k2_history::check_work(&t.store, run, "3/2 / 2 = 3/4")
        .await
        .unwrap();
    assert_eq!(right.check.first_wrong, None);
    assert_eq!(right.check.final_answer, CheckVerdict::Right);
    // A run the tutor is not sure of: arithmetic only, and it says so.
    let unsure = record_run(&t.store, session, problem_text, "\\frac{3}{4}").await;
    let only = k2_history::check_work(&t.store, unsure, "3/2 / 2 = 3/4")
        .await
        .unwrap();
    assert_eq!(only.check.basis, CheckBasis::Unsure);
    assert_eq!(only.check.final_answer, CheckVerdict::Unsure);
    assert!(only
        .check
        .summary
        .contains("Only the arithmetic was checked"));
    assert!(matches!(
        k2_history::check_work(&t.store, run, " ").await,
        Err(HistoryError::BadRequest(_))
    ));
}

#[tokio::test]
async fn an_attempt_at_a_run_the_tutor_is_not_sure_of_is_unsure_never_wrong() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    // One candidate finished, the other was cut off by the token limit: one solution agrees
    // with nothing.
    let run = record_run(&t.store, session, "Half of 3/2?", "\\frac{3}{4}").await;
    for answer in ["0.75", "4/3"] {
        let checked = k2_history::check_attempt(&t.store, run, answer)
            .await
            .unwrap();
        assert_eq!(checked.check, AttemptCheck::UNSURE, "{answer}");
        assert_eq!(checked.equivalent, None);
    }
    let problem = t.store.run(run).await.unwrap().problem.id;
    let kept = t.store.attempts(problem).await.unwrap();
    assert!(kept.iter().all(|a| a.check == Some(AttemptCheck::UNSURE)));
}

#[tokio::test]
async fn notes_refer_to_the_run_or_to_one_of_its_events() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let run = record_run(&t.store, session, "p", "1").await;
    let events = k2_history::events(&t.store, run).await.unwrap();
    let last = events.last().unwrap().seq;

    let whole = NewNote {
        text: "Good work overall.".into(),
        ..NewNote::default()
    };
    let at_plan = NewNote {
        seq: Some(2),
        author: Some("  Ms. Rivera ".into()),
        text: "The plan names Vieta; ask why.".into(),
    };
    k2_history::add_note(&t.store, run, &at_plan).await.unwrap();
    let notes = k2_history::add_note(&t.store, run, &whole).await.unwrap();
    // Whole-run notes first, then in the order of the run.
    assert_eq!(notes[0].text, "Good work overall.");
    assert_eq!(
        (notes[1].seq, notes[1].author.as_deref()),
        (Some(2), Some("Ms. Rivera"))
    );

    let beyond = NewNote {
        seq: Some(last + 1),
        text: "x".into(),
        ..NewNote::default()
    };
    assert!(matches!(
        k2_history::add_note(&t.store, run, &beyond).await,
        Err(HistoryError::BadRequest(m)) if m.contains("cannot refer to event")
    ));
    assert!(matches!(
        k2_history::add_note(&t.store, run, &NewNote::default()).await,
        Err(HistoryError::BadRequest(_))
    ));
    assert_eq!(k2_history::notes(&t.store, run).await.unwrap().len(), 2);
}

#[tokio::test]
async fn exports_carry_the_notes_and_escape_model_html() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let run = record_run(&t.store, session, "Is <script>alert(1)</script> 2?", "2").await;
    let note = NewNote {
        text: "Check the units.".into(),
        ..NewNote::default()
    };
    k2_history::add_note(&t.store, run, &note).await.unwrap();

    let markdown = k2_history::export(&t.store, run, "markdown").await.unwrap();
    assert_eq!(markdown.file_name, format!("k2-run-{run}.md"));
    assert!(markdown.content.contains("Check the units."));
    let html = k2_history::export(&t.store, run, "html").await.unwrap();
    assert!(html.media_type.starts_with("text/html"));
    assert!(html.content.contains("Check the units."));
    assert!(!html.content.contains("<script>alert"));
    assert!(matches!(
        k2_history::export(&t.store, run, "pdf").await,
        Err(HistoryError::BadRequest(m)) if m.contains("pdf")
    ));
}

#[tokio::test]
async fn deleted_runs_are_gone_and_say_so() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let run = record_run(&t.store, session, "p", "1").await;
    k2_history::delete(&t.store, run).await.unwrap();
    assert!(k2_history::list(&t.store, None).await.unwrap().is_empty());
    let gone = k2_history::events(&t.store, run).await.unwrap_err();
    assert!(gone.to_string().contains("not in the history"), "{gone}");
    assert!(matches!(
        k2_history::delete(&t.store, run).await,
        Err(HistoryError::NotFound(_))
    ));
}

/// Every operation through the one entry point the front ends use, on a real database, and
/// the JSON each answer goes out as.
#[tokio::test]
async fn dispatch_answers_every_operation() {
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let older = record_run(&t.store, session, "What is 7 squared?", "49").await;
    let run = record_events(
        &t.store,
        session,
        "Half of 3/2?",
        confident_run_events("Half of 3/2?", "\\frac{3}{4}"),
    )
    .await;
    let ask = |request: HistoryRequest| k2_history::dispatch(&t.store, request);

    let HistoryReply::Runs(all) = ask(HistoryRequest::List { query: None }).await.unwrap() else {
        panic!("a listing answers runs")
    };
    assert_eq!(
        all.runs.iter().map(|i| i.run.id).collect::<Vec<_>>(),
        [run, older]
    );
    assert!(all.unreadable.is_empty());
    let found = ask(HistoryRequest::List {
        query: Some("squared".into()),
    })
    .await
    .unwrap();
    let HistoryReply::Runs(found) = &found else {
        panic!("a search answers runs: {found:?}")
    };
    assert_eq!(found.runs.len(), 1);
    assert_eq!(found.runs[0].run.id, older);
    assert!(found.runs[0]
        .snippet
        .as_deref()
        .unwrap()
        .contains("«squared»"));

    let HistoryReply::Events(events) = ask(HistoryRequest::Events { run }).await.unwrap() else {
        panic!("events answer events")
    };
    assert_eq!(events, t.store.events(run).await.unwrap());
    assert!(events.len() > 2);

    let note = NewNote {
        seq: Some(1),
        author: Some("Ms. Rivera".into()),
        text: "Why halve?".into(),
    };
    let added = ask(HistoryRequest::AddNote { run, note }).await.unwrap();
    let HistoryReply::Notes(added) = added else {
        panic!("adding a note answers the notes: {added:?}")
    };
    assert_eq!(
        added
            .iter()
            .map(|n| (n.seq, n.author.as_deref(), n.text.as_str()))
            .collect::<Vec<_>>(),
        [(Some(1), Some("Ms. Rivera"), "Why halve?")]
    );
    assert_eq!(
        ask(HistoryRequest::Notes { run }).await.unwrap(),
        HistoryReply::Notes(added.clone())
    );

    let checked = ask(HistoryRequest::CheckAttempt {
        run,
        answer: "0.75".into(),
    })
    .await
    .unwrap();
    let HistoryReply::Attempt(checked) = checked else {
        panic!("an attempt answers its check: {checked:?}")
    };
    assert_eq!(checked.equivalent, Some(true));
    assert_eq!(
        serde_json::to_value(checked.check).unwrap(),
        json!({"verdict": "right", "basis": "unanimous"})
    );
    let problem = t.store.run(run).await.unwrap().problem.id;
    assert_eq!(
        t.store.attempts(problem).await.unwrap()[0].id,
        checked.attempt
    );

    let exported = ask(HistoryRequest::Export {
        run,
        format: "html".into(),
    })
    .await
    .unwrap();
    let HistoryReply::Export(file) = &exported else {
        panic!("an export answers a file: {exported:?}")
    };
    assert_eq!(file.file_name, format!("k2-run-{run}.html"));
    assert!(file.media_type.starts_with("text/html"));
    assert!(file.content.contains("Why halve?"));
    // On the wire, every answer is the answer itself, untagged.
    let wire = serde_json::to_value(&exported).unwrap();
    assert_eq!(wire["file_name"], json!(file.file_name));
    assert_eq!(wire["content"], json!(file.content));
    assert!(matches!(
        ask(HistoryRequest::Export { run, format: "pdf".into() }).await,
        Err(HistoryError::BadRequest(m)) if m.contains("pdf")
    ));

    let deleted = ask(HistoryRequest::Delete { run }).await.unwrap();
    assert_eq!(deleted, HistoryReply::Deleted);
    assert_eq!(serde_json::to_value(&deleted).unwrap(), json!(null));
    assert!(matches!(
        ask(HistoryRequest::Events { run }).await,
        Err(HistoryError::NotFound(id)) if id == run
    ));
    let rest = ask(HistoryRequest::List { query: None }).await.unwrap();
    let wire = serde_json::to_value(&rest).unwrap();
    assert_eq!(wire["runs"].as_array().unwrap().len(), 1);
    assert_eq!(wire["runs"][0]["id"], json!(older));
    assert_eq!(wire["runs"][0]["problem"], json!("What is 7 squared?"));
    assert!(wire["runs"][0].get("snippet").is_none(), "{wire}");
    assert_eq!(wire["unreadable"], json!([]), "{wire}");
}

#[test]
fn without_a_store_only_the_listing_has_an_answer() {
    assert_eq!(
        k2_history::without_store(&HistoryRequest::List { query: None }),
        Some(HistoryReply::Runs(Default::default()))
    );
    assert_eq!(
        k2_history::without_store(&HistoryRequest::Delete { run: 1 }),
        None
    );
    let saved = HistoryReply::Saved {
        path: "/home/a/Downloads/k2-run-1.md".into(),
    };
    assert_eq!(
        serde_json::to_value(saved).unwrap(),
        json!({"path": "/home/a/Downloads/k2-run-1.md"})
    );
}

/// A reviewer that counts its calls and doubts the first step, as the verifier model may.
#[derive(Default)]
struct CountingReviewer(std::sync::atomic::AtomicUsize);

impl k2_history::WorkReviewer for CountingReviewer {
    fn review(&self, review: k2_history::WorkReview) -> k2_history::ReviewFuture<'_> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let steps = k2_answer::work::split_steps(&review.work);
        let doubt = k2_answer::work::ModelReview::Doubt {
            step: 1,
            advice: "Check which amount is asked for.".into(),
        };
        Box::pin(async move { k2_answer::work::with_model_review(review.check, &steps, doubt) })
    }
}

#[tokio::test]
async fn the_reviewer_is_asked_only_where_numbers_cannot_decide_and_its_doubt_is_kept() {
    use k2_protocol::WorkIssueKind;
    let t = temp_store().await;
    let session = t.store.create_session("Desktop").await.unwrap();
    let run = record_run(&t.store, session, "What is half of 3/2?", "\\frac{3}{4}").await;
    let reviewer = CountingReviewer::default();
    let ask = |work: &str| HistoryRequest::CheckWork {
        run,
        work: work.into(),
    };
    // An arithmetic error: the numbers decide, the model is not asked.
    let reply = k2_history::dispatch_with_reviewer(&t.store, ask("3/2 / 2 = 1"), Some(&reviewer))
        .await
        .unwrap();
    let HistoryReply::Work(numbers) = reply else {
        panic!("checked work answers its check")
    };
    assert!(!numbers.check.reviewed_by_model);
    assert_eq!(reviewer.0.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Words only: the model is asked, and its doubt is kept apart and stored.
    let words = "Halve the fraction.\nWrite it in lowest terms.";
    let reply = k2_history::dispatch_with_reviewer(&t.store, ask(words), Some(&reviewer))
        .await
        .unwrap();
    let HistoryReply::Work(reviewed) = reply else {
        panic!("checked work answers its check")
    };
    assert_eq!(reviewer.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(reviewed.check.reviewed_by_model);
    assert_eq!(reviewed.check.first_wrong, None);
    let doubt = reviewed.check.model_doubt.clone().unwrap();
    assert_eq!((doubt.step, doubt.kind), (1, WorkIssueKind::ModelDoubt));
    let problem = t.store.run(run).await.unwrap().problem.id;
    let kept = t.store.work_checks(problem).await.unwrap();
    assert_eq!(kept[0].check, reviewed.check);
    // Without a reviewer (`dispatch`), the same work is not reviewed.
    let HistoryReply::Work(plain) = k2_history::dispatch(&t.store, ask(words)).await.unwrap()
    else {
        panic!("checked work answers its check")
    };
    assert!(!plain.check.reviewed_by_model && plain.check.model_doubt.is_none());
}
