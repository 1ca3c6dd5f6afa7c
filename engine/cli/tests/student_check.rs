//! The contract of `k2 solve --student --attempt ANSWER [--answer-key ANSWER]`, on a real
//! model: the last JSON line carries `"check": {"verdict", "basis"}`, computed by the one
//! check (`k2_answer::check`), and the attempt is stored with its verdict and basis.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k2_engine::answer::check::{check_attempt_in_view, KnownAnswers};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict, Event, RunView, WorkCheck};
use k2_store::{PageRequest, Store};
use serde_json::{json, Value};

fn smollm() -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join("smollm2-135m-instruct-q4_1.gguf");
    assert!(path.exists(), "run scripts/fetch-test-models.sh first");
    path
}

/// A short best-of-3 run of the fast test model, stored in `db`.
fn solve(db: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k2"))
        .args([
            "solve",
            "What is 17 + 25?",
            "--model",
            smollm().to_str().unwrap(),
            "--no-plan",
            "-n",
            "3",
            "--select",
            "vote",
            "--seed",
            "3",
            "--max-tokens",
            "48",
            "--db",
            db.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn jsonl(db: &Path, extra: &[&str]) -> (Vec<Event>, Value) {
    let out = solve(db, &[&["--format", "jsonl"], extra].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let events = lines[..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str::<Event>(line).unwrap())
        .collect();
    (events, serde_json::from_str(lines.last().unwrap()).unwrap())
}

/// `k2 solve --student --work FILE --answer-key 42 --format jsonl` with `work` written to a file
/// in `dir`: the events, the last line and the check of the work it holds.
fn checked_work(dir: &Path, db: &Path, work: &str) -> (Vec<Event>, Value, WorkCheck) {
    let file = dir.join("work.txt");
    std::fs::write(&file, work).unwrap();
    let (events, last) = jsonl(
        db,
        &[
            "--student",
            "--work",
            file.to_str().unwrap(),
            "--answer-key",
            "42",
        ],
    );
    let checked = serde_json::from_value(last["work"].clone()).unwrap();
    (events, last, checked)
}

/// The stored runs' attempts, newest run first: (answer, check).
fn stored_attempts(db: &Path) -> Vec<(String, Option<AttemptCheck>)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(db).await.unwrap();
        let mut all = Vec::new();
        for run in store
            .list_runs(None, PageRequest::first(10))
            .await
            .unwrap()
            .items
        {
            for attempt in store.attempts(run.problem_id).await.unwrap() {
                all.push((attempt.answer, attempt.check));
            }
        }
        all
    })
}

#[test]
fn with_an_answer_key_the_check_is_exact_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let (_, last) = jsonl(
        &db,
        &["--student", "--attempt", "42.0", "--answer-key", "42"],
    );
    assert_eq!(
        last["check"],
        json!({"verdict": "right", "basis": "answer_key"})
    );
    let (_, last) = jsonl(&db, &["--student", "--attempt", "41", "--answer-key", "42"]);
    assert_eq!(
        last["check"],
        json!({"verdict": "wrong", "basis": "answer_key"})
    );
    let key = |verdict| AttemptCheck {
        verdict,
        basis: CheckBasis::AnswerKey,
    };
    assert_eq!(
        stored_attempts(&db),
        [
            ("41".to_owned(), Some(key(CheckVerdict::Wrong))),
            ("42.0".to_owned(), Some(key(CheckVerdict::Right))),
        ]
    );

    // The text output says the verdict plainly.
    let out = solve(&db, &["--student", "--attempt", "41", "--answer-key", "42"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Your answer 41: wrong (answer_key)"),
        "{text}"
    );
    assert!(text.contains("checked against the answer key"), "{text}");
}

#[test]
fn without_a_key_the_run_is_the_basis_only_when_the_tutor_is_confident() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let (events, last) = jsonl(&db, &["--student", "--attempt", "41"]);
    let check: AttemptCheck = serde_json::from_value(last["check"].clone()).unwrap();
    // The very check every front end makes, on the events streamed.
    let view = RunView::replay(&events);
    assert_eq!(
        check,
        check_attempt_in_view("41", KnownAnswers::default(), &view)
    );
    match check.basis {
        CheckBasis::Unsure => assert_eq!(check, AttemptCheck::UNSURE),
        CheckBasis::Unanimous | CheckBasis::Verifier => {}
        other => panic!("no key was given, yet the basis is {other}"),
    }
    assert_eq!(stored_attempts(&db), [("41".to_owned(), Some(check))]);
    // Without --attempt there is no check on the last line.
    let (_, last) = jsonl(&db, &[]);
    assert!(last.get("check").is_none(), "{last}");
    assert!(last.get("answer").is_some(), "{last}");
}

#[test]
fn an_attempt_needs_student_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = solve(&dir.path().join("sessions.db"), &["--attempt", "42"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--student"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--work FILE`: the first wrong step on the last JSON line (`"work"`), the same check every
/// front end makes, no correct value in it, kept with the run; `-` reads standard input.
#[test]
fn work_is_checked_step_by_step_and_kept() {
    use k2_engine::answer::work::{check_work, reference_for_run};
    use k2_protocol::WorkIssueKind;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let (events, last, checked) = checked_work(dir.path(), &db, "17 + 20 = 37\n$37 + 5 = 43$\n");
    let wrong = checked.first_wrong.clone().unwrap();
    assert_eq!((wrong.step, wrong.kind), (2, WorkIssueKind::Arithmetic));
    assert_eq!(
        wrong.message,
        "Step 2: 37 + 5 = 43 does not hold; check this calculation."
    );
    assert!(!last["work"].to_string().contains("42"), "{}", last["work"]);
    // The numbers decided: the verifier model was not asked.
    assert!(!checked.reviewed_by_model && checked.model_doubt.is_none());
    let view = RunView::replay(&events);
    let known = KnownAnswers {
        answer_key: Some("42"),
        teacher: None,
    };
    let reference = reference_for_run(&view, known, None);
    let text = std::fs::read_to_string(dir.path().join("work.txt")).unwrap();
    assert_eq!(checked, check_work(&text, reference.as_ref()).unwrap());
    let kept = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&db).await.unwrap();
        let run = &store
            .list_runs(None, PageRequest::first(1))
            .await
            .unwrap()
            .items[0];
        store.work_checks(run.problem_id).await.unwrap()
    });
    assert_eq!(kept[0].check, checked);

    // From standard input, in the terminal: the step named, its text escaped.
    let mut child = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args([
            "solve",
            "What is 17 + 25?",
            "--model",
            smollm().to_str().unwrap(),
            "--no-plan",
            "-n",
            "1",
            "--max-tokens",
            "16",
            "--no-store",
            "--student",
            "--work",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("17 + 25 = 41 \u{1b}[31m\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Your work (1 step): Step 1: 17 + 25 = 41 does not hold"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\\u{1b}[31m") && !stdout.contains('\u{1b}'),
        "{stdout}"
    );

    // Empty work or a missing file: a clear error before any solving.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    for (path, says) in [
        (empty.to_str().unwrap(), "empty"),
        ("/nonexistent/work", "cannot read"),
    ] {
        let out = solve(&db, &["--student", "--work", path]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// Work the numbers cannot decide (no number in it): the planner (judge) model reads it, and
/// the last JSON line says so (`reviewed_by_model`), with its doubt, if any, kept apart as the
/// model's opinion (`model_doubt`, unsure), never a correct value; the stored check is the same.
#[test]
fn work_without_numbers_is_read_by_the_verifier_model() {
    use k2_protocol::{WorkCertainty, WorkIssueKind};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let (_, last, checked) = checked_work(
        dir.path(),
        &db,
        "Add the two numbers.\nThen take away the first one.\n",
    );
    assert_eq!(checked.first_wrong, None);
    assert!(checked.reviewed_by_model, "{}", last["work"]);
    assert!(
        checked.summary.contains("verifier model"),
        "{}",
        checked.summary
    );
    if let Some(doubt) = &checked.model_doubt {
        assert_eq!(doubt.kind, WorkIssueKind::ModelDoubt);
        assert_eq!(doubt.certainty, WorkCertainty::Unsure);
        assert!((1..=2).contains(&doubt.step), "{doubt:?}");
        assert!(doubt.message.contains("not verified"), "{doubt:?}");
    }
    assert!(!last["work"].to_string().contains("42"), "{}", last["work"]);
    let kept = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&db).await.unwrap();
        let run = &store
            .list_runs(None, PageRequest::first(1))
            .await
            .unwrap()
            .items[0];
        store.work_checks(run.problem_id).await.unwrap()
    });
    assert_eq!(kept[0].check, checked);
}

/// The hint ladder's contract: `hint` events `{"type":"hint","level":N,"text":…,"bottom_out":
/// bool}` after the answer, levels from 1 without gaps, exactly the last one the worked
/// solution, and no other rung revealing the answer key or any candidate's answer.
#[test]
fn a_student_run_ends_with_a_screened_hint_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let out = solve(
        &db,
        &["--student", "--answer-key", "42", "--format", "jsonl"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let raw: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hints: Vec<&Value> = raw.iter().filter(|e| e["type"] == "hint").collect();
    assert!(!hints.is_empty(), "no hint events:\n{stdout}");
    for (i, hint) in hints.iter().enumerate() {
        assert_eq!(hint["level"], json!(i + 1), "{hint}");
        assert!(
            hint["text"].as_str().is_some_and(|t| !t.trim().is_empty()),
            "{hint}"
        );
        assert_eq!(hint["bottom_out"], json!(i + 1 == hints.len()), "{hint}");
    }
    let events: Vec<Event> = raw[..raw.len() - 1]
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let view = RunView::replay(&events);
    let answers: Vec<&str> = view
        .candidates
        .iter()
        .filter_map(|c| c.finished.as_ref()?.answer.as_deref())
        .chain(["42"])
        .collect();
    let withheld = k2_engine::answer::hints::Withheld::new(answers.iter().copied());
    for hint in view.hints.iter().filter(|h| !h.bottom_out) {
        assert!(
            !withheld.revealed_in(&hint.text),
            "rung {} reveals one of {answers:?}: {}",
            hint.level,
            hint.text
        );
    }

    // The terminal shows the whole ladder, the worked solution marked.
    let out = solve(&db, &["--student"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Hints"), "{text}");
    assert!(
        text.contains("Worked solution (gives the answer away)"),
        "{text}"
    );
}
