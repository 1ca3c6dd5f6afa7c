//! A teacher's correction of a run's answer and the student's record (attempts, hints
//! opened), through the history's operations on a real SQLite file, and in the exports.

#[path = "../../store/tests/common/mod.rs"]
mod common;

use common::{confident_run_events, record_events, temp_store};
use k2_history::{HistoryError, HistoryReply, HistoryRequest};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict, Event, Hint, RunEvent};
use serde_json::json;

/// The recorded run of `common` the tutor is confident in (unanimous), with a hint ladder of
/// `ladder` rungs before its last event.
fn confident_run(problem: &str, answer: &str, ladder: u32) -> Vec<Event> {
    let mut events = confident_run_events(problem, answer);
    let last = events.pop().unwrap();
    for level in 1..=ladder {
        events.push(Event {
            seq: 0,
            elapsed_ms: last.elapsed_ms,
            kind: RunEvent::Hint(Hint {
                level,
                text: format!("Hint {level}: count the sides."),
                bottom_out: level == ladder,
                screened: None,
            }),
        });
    }
    events.push(last);
    for (seq, event) in events.iter_mut().enumerate() {
        event.seq = seq as u64;
    }
    events
}

fn check(verdict: CheckVerdict, basis: CheckBasis) -> AttemptCheck {
    AttemptCheck { verdict, basis }
}

const HEXAGON: &str = "What is the sum of the interior angles of a hexagon, in degrees?";

#[tokio::test]
async fn a_teachers_correction_changes_later_checks_and_the_latest_one_is_in_force() {
    let t = temp_store().await;
    let session = t.store.create_session("Class 7b").await.unwrap();
    // Both candidates said 540, confidently and wrongly.
    let run = record_events(&t.store, session, HEXAGON, confident_run(HEXAGON, "540", 0)).await;
    let ask = |request: HistoryRequest| k2_history::dispatch(&t.store, request);
    let attempt = |answer: &str| HistoryRequest::CheckAttempt {
        run,
        answer: answer.into(),
    };
    let verdict = |reply: HistoryReply| match reply {
        HistoryReply::Attempt(a) => a.check,
        other => panic!("an attempt answers its check: {other:?}"),
    };

    let before = verdict(ask(attempt("720")).await.unwrap());
    assert_eq!(before, check(CheckVerdict::Wrong, CheckBasis::Unanimous));

    let corrected = ask(HistoryRequest::CorrectAnswer {
        run,
        answer: " 720 ".into(),
        author: Some(" Ms. Rivera ".into()),
        note: Some("An n-gon's angles sum to (n-2)·180°.".into()),
    })
    .await
    .unwrap();
    let HistoryReply::Record(record) = &corrected else {
        panic!("a correction answers the record: {corrected:?}")
    };
    let correction = record.correction.as_ref().unwrap();
    assert_eq!(correction.answer, "720");
    assert_eq!(correction.author.as_deref(), Some("Ms. Rivera"));
    assert!(record.earlier_corrections.is_empty());

    // The same answer, checked again: now right, and on the teacher's word.
    let after = verdict(ask(attempt("720")).await.unwrap());
    assert_eq!(after, check(CheckVerdict::Right, CheckBasis::Teacher));
    let equal = verdict(ask(attempt("7.2 \\times 10^2")).await.unwrap());
    assert_eq!(equal, check(CheckVerdict::Right, CheckBasis::Teacher));
    let runs_own = verdict(ask(attempt("540")).await.unwrap());
    assert_eq!(runs_own, check(CheckVerdict::Wrong, CheckBasis::Teacher));

    // Everyone who opens the run sees the correction in force.
    let HistoryReply::Run(shown) = ask(HistoryRequest::Show { run }).await.unwrap() else {
        panic!("show answers the run")
    };
    assert_eq!(shown.correction.as_ref().unwrap().answer, "720");
    let wire = serde_json::to_value(&shown).unwrap();
    assert_eq!(wire["correction"]["answer"], json!("720"));

    // A later correction replaces it; the earlier one stays in the record.
    k2_history::correct_answer(&t.store, run, "700", None, None)
        .await
        .unwrap();
    let again = verdict(ask(attempt("720")).await.unwrap());
    assert_eq!(again, check(CheckVerdict::Wrong, CheckBasis::Teacher));
    let record = k2_history::record(&t.store, run).await.unwrap();
    assert_eq!(record.correction.as_ref().unwrap().answer, "700");
    assert_eq!(
        record
            .earlier_corrections
            .iter()
            .map(|c| c.answer.as_str())
            .collect::<Vec<_>>(),
        ["720"]
    );
    // Every attempt is kept with the check it got at the time, oldest first.
    assert_eq!(
        record
            .attempts
            .iter()
            .map(|a| (a.answer.as_str(), a.check.unwrap()))
            .collect::<Vec<_>>(),
        [
            ("720", before),
            ("720", after),
            ("7.2 \\times 10^2", equal),
            ("540", runs_own),
            ("720", again),
        ]
    );

    // An answer key still comes first.
    let problem = t.store.run(run).await.unwrap().problem.id;
    t.store.set_known_answer(problem, "720").await.unwrap();
    let keyed = verdict(ask(attempt("720")).await.unwrap());
    assert_eq!(keyed, check(CheckVerdict::Right, CheckBasis::AnswerKey));

    assert!(matches!(
        k2_history::correct_answer(&t.store, run, "  ", None, None).await,
        Err(HistoryError::BadRequest(m)) if m.contains("empty")
    ));
    assert!(matches!(
        k2_history::correct_answer(&t.store, run + 100, "1", None, None).await,
        Err(HistoryError::NotFound(_))
    ));
}

#[tokio::test]
async fn hints_opened_are_kept_in_order_and_answered_as_levels() {
    let t = temp_store().await;
    let session = t.store.create_session("Class 7b").await.unwrap();
    let run = record_events(&t.store, session, HEXAGON, confident_run(HEXAGON, "720", 4)).await;
    let open = |level: u32| k2_history::dispatch(&t.store, HistoryRequest::OpenHint { run, level });

    // The rung opened comes with the answer: a student-mode stream carried no hint text.
    let rung = |level: u32| {
        confident_run(HEXAGON, "720", 4)
            .into_iter()
            .find_map(|e| match e.kind {
                RunEvent::Hint(h) if h.level == level => Some(h),
                _ => None,
            })
    };
    assert!(rung(2).is_some(), "the recorded run has a ladder");
    let opened = |levels: Vec<u32>, level| {
        HistoryReply::HintsOpened(k2_history::OpenedHints {
            levels,
            hint: rung(level),
        })
    };
    assert_eq!(open(2).await.unwrap(), opened(vec![2], 2));
    assert_eq!(open(1).await.unwrap(), opened(vec![1, 2], 1));
    let again = open(2).await.unwrap();
    let again = serde_json::to_value(&again).unwrap();
    assert_eq!(again["levels"], json!([1, 2]));
    assert_eq!(again["hint"]["level"], 2);
    assert!(matches!(
        open(0).await,
        Err(HistoryError::BadRequest(m)) if m.contains("from 1")
    ));
    assert!(matches!(
        k2_history::open_hint(&t.store, run + 100, 1).await,
        Err(HistoryError::NotFound(_))
    ));

    let record = k2_history::record(&t.store, run).await.unwrap();
    assert_eq!(
        record.hints.iter().map(|h| h.level).collect::<Vec<_>>(),
        [2, 1, 2]
    );
    assert!(record
        .hints
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));
    assert_eq!(record.ladder, 4);
    k2_history::check_attempt(&t.store, run, "720")
        .await
        .unwrap();
    let record = k2_history::record(&t.store, run).await.unwrap();
    assert_eq!(
        record.summary().unwrap(),
        "opened hints 1-2 of 4, then answered 720: right"
    );
    // Deleting the run deletes its record.
    k2_history::delete(&t.store, run).await.unwrap();
    assert!(t.store.opened_hints(run).await.unwrap().is_empty());
}

#[tokio::test]
async fn exports_show_the_correction_and_the_students_work_escaped() {
    let t = temp_store().await;
    let session = t.store.create_session("Class 7b").await.unwrap();
    let run = record_events(&t.store, session, HEXAGON, confident_run(HEXAGON, "540", 4)).await;
    k2_history::open_hint(&t.store, run, 1).await.unwrap();
    k2_history::open_hint(&t.store, run, 2).await.unwrap();
    let hostile = "<img src=x onerror=alert(1)> *x*";
    k2_history::check_attempt(&t.store, run, hostile)
        .await
        .unwrap();
    k2_history::correct_answer(
        &t.store,
        run,
        "720",
        Some("Ms. <b>Rivera</b>"),
        Some("(n-2)·180"),
    )
    .await
    .unwrap();
    k2_history::check_attempt(&t.store, run, "\\frac{1440}{2}")
        .await
        .unwrap();

    let markdown = k2_history::export(&t.store, run, "markdown")
        .await
        .unwrap()
        .content;
    assert!(markdown.contains("### Teacher's correction"), "{markdown}");
    assert!(
        markdown.contains("corrected the run's answer to $720$"),
        "{markdown}"
    );
    assert!(markdown.contains("### Student's work"), "{markdown}");
    assert!(
        markdown.contains(
            "Summary: opened hints 1-2 of 4, then answered &lt;img src=x onerror=alert(1)&gt; \\*x\\*: wrong; answered \\\\frac{1440}{2}: right."
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "answered $\\frac{1440}{2}$: **right** (checked against your teacher's correction)"
        ),
        "{markdown}"
    );
    assert!(markdown.contains("opened hint 2 of 4"), "{markdown}");
    assert!(!markdown.contains("<img"), "{markdown}");
    assert!(!markdown.contains("<b>"), "{markdown}");

    let html = k2_history::export(&t.store, run, "html")
        .await
        .unwrap()
        .content;
    let work = &html[html
        .find("Student&#39;s work")
        .or_else(|| html.find("Student’s work"))
        .or_else(|| html.find("Student's work"))
        .expect("a Student's work section")..];
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>Rivera"), "{html}");
    assert!(
        work.contains("&lt;img src=x onerror=alert(1)&gt; *x*"),
        "{work}"
    );
    assert!(
        work.contains("<math"),
        "the student's LaTeX answer is rendered: {work}"
    );
    assert!(html.contains("Ms. &lt;b&gt;Rivera&lt;/b&gt;"), "{html}");
}

#[tokio::test]
async fn checked_work_is_in_the_record_its_summary_and_the_exports_escaped() {
    use k2_protocol::{WorkCertainty, WorkIssueKind};
    let t = temp_store().await;
    let session = t.store.create_session("Class 7b").await.unwrap();
    let run = record_events(&t.store, session, HEXAGON, confident_run(HEXAGON, "720", 0)).await;
    let work = "(6 - 2) \\times 180 = 700\nthe angles: <img src=x onerror=alert(1)>";
    let HistoryReply::Work(checked) = k2_history::dispatch(
        &t.store,
        HistoryRequest::CheckWork {
            run,
            work: work.into(),
        },
    )
    .await
    .unwrap() else {
        panic!("checked work answers its check")
    };
    k2_history::check_work(&t.store, run, "(6 - 2) \\times 180 = 720")
        .await
        .unwrap();

    let HistoryReply::Record(record) =
        k2_history::dispatch(&t.store, HistoryRequest::Record { run })
            .await
            .unwrap()
    else {
        panic!("record answers the record")
    };
    assert_eq!(record.work_checks.len(), 2);
    let first = &record.work_checks[0];
    assert_eq!((first.id, &first.check), (checked.stored, &checked.check));
    assert_eq!(first.work, work);
    let wrong = first.check.first_wrong.as_ref().unwrap();
    assert_eq!(
        (wrong.step, wrong.kind, wrong.certainty),
        (1, WorkIssueKind::Arithmetic, WorkCertainty::Sure)
    );
    assert_eq!(record.work_checks[1].check.first_wrong, None);
    assert_eq!(
        record.summary().unwrap(),
        "checked work: wrong at step 1; \
         checked work: no wrong step found, final answer right"
    );

    let markdown = k2_history::export(&t.store, run, "markdown")
        .await
        .unwrap()
        .content;
    assert!(
        markdown.contains("Summary: checked work: wrong at step 1; checked work: no wrong step"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**wrong at step 1**, an arithmetic mistake (sure)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**no wrong step found, final answer right**"),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "  > (6 - 2) \\\\times 180 = 700\\\n  > the angles: &lt;img src=x onerror=alert(1)&gt;\n"
        ),
        "{markdown}"
    );
    assert!(!markdown.contains("<img"), "{markdown}");

    let html = k2_history::export(&t.store, run, "html")
        .await
        .unwrap()
        .content;
    assert!(!html.contains("<img"), "{html}");
    let work_section = &html[html
        .find("Student&#39;s work")
        .or_else(|| html.find("Student’s work"))
        .or_else(|| html.find("Student's work"))
        .expect("a Student's work section")..];
    assert!(
        work_section.contains("<blockquote>"),
        "the work is quoted: {work_section}"
    );
    assert!(
        work_section.contains("700<br />\nthe angles: &lt;img src=x onerror=alert(1)&gt;"),
        "{work_section}"
    );
    assert!(
        work_section.contains("<strong>wrong at step 1</strong>"),
        "{work_section}"
    );
}
