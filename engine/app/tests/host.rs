//! The run host with a scripted backend (no model) and a real SQLite store: whatever happens,
//! the stream ends with exactly one terminal event, and the store and the front end see the
//! same events in the same order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k2_app::{Backends, RunHost, RunLimits, SinkFlow};
use k2_protocol::{Event, FinishReason, RunEvent, RunRequest, RunSettings, Selection};
use k2_scaffold::{
    Backend, CancelToken, ChatMessage, Completion, GenerateOptions, Result, ScaffoldError,
};
use k2_store::Store;
use tokio::runtime::Runtime;

/// What the scripted backend does on its `fail_on`-th call.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    Answer,
    FailMidStream,
    Panic,
}

struct Scripted {
    script: Script,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(script: Script) -> Arc<Self> {
        Arc::new(Scripted {
            script,
            calls: AtomicUsize::new(0),
        })
    }
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn complete(
        &self,
        _messages: &[ChatMessage],
        n: usize,
        _options: &GenerateOptions,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let text = "2 + 2 = 4, so the answer is \\boxed{4}.";
        let mut out = Vec::new();
        for row in 0..n {
            for word in text.split_inclusive(' ') {
                if cancel.is_cancelled() {
                    return Err(ScaffoldError::Cancelled);
                }
                on_delta(row, word);
            }
            match self.script {
                Script::FailMidStream => {
                    return Err(ScaffoldError::Remote {
                        url: "http://scripted".into(),
                        message: "the connection broke".into(),
                    })
                }
                Script::Panic => panic!("scripted backend bug"),
                Script::Answer => {}
            }
            out.push(Completion {
                text: text.into(),
                prompt_tokens: 10,
                tokens: 12,
                finish: FinishReason::Complete,
                seconds: 0.01,
                drafted_tokens: 0,
                accepted_draft_tokens: 0,
                target_passes: 12,
            });
        }
        Ok(out)
    }
}

fn request() -> RunRequest {
    RunRequest {
        problem: "What is 2 + 2?".into(),
        settings: RunSettings {
            candidates: 2,
            plan: true,
            selection: Selection::Vote,
            ..RunSettings::default()
        },
        session: None,
    }
}

struct Fixture {
    runtime: Runtime,
    store: Store,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new().unwrap();
    let store = runtime
        .block_on(Store::open(dir.path().join("sessions.db")))
        .unwrap();
    Fixture {
        runtime,
        store,
        _dir: dir,
    }
}

/// Runs `request` with `backend`; the events the sink saw, those stored, and the outcome.
fn run_with(
    fixture: &Fixture,
    backend: Arc<dyn Backend>,
    cancel_after: Option<usize>,
) -> (Vec<Event>, Vec<Event>, std::result::Result<(), String>) {
    let host = RunHost::recording(
        fixture.store.clone(),
        fixture.runtime.handle().clone(),
        "Tests",
    );
    let started = host
        .start_blocking(
            request(),
            Backends::single(backend, "scripted"),
            RunLimits::NONE,
        )
        .unwrap();
    let stored = started.stored().expect("the run is recorded");
    let cancel = CancelToken::new();
    let mut seen = Vec::new();
    let mut sink = |event: &Event| {
        seen.push(event.clone());
        match cancel_after {
            Some(n) if seen.len() >= n => SinkFlow::Gone,
            _ => SinkFlow::Continue,
        }
    };
    let outcome = started.run(&cancel, &mut sink);
    let kept = fixture
        .runtime
        .block_on(fixture.store.events(stored))
        .unwrap();
    (seen, kept, outcome.map(|_| ()).map_err(|e| e.to_string()))
}

fn terminal_events(events: &[Event]) -> Vec<&RunEvent> {
    events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| k.is_terminal())
        .collect()
}

fn assert_one_terminal_last(events: &[Event]) {
    let terminal = terminal_events(events);
    assert_eq!(
        terminal.len(),
        1,
        "exactly one terminal event: {terminal:?}"
    );
    assert!(events.last().unwrap().kind.is_terminal());
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64, "seq without gaps");
    }
}

#[test]
fn a_successful_run_ends_with_stats_and_is_stored_as_streamed() {
    let fixture = fixture();
    let (seen, kept, outcome) = run_with(&fixture, Scripted::new(Script::Answer), None);
    outcome.unwrap();
    assert_one_terminal_last(&seen);
    assert!(matches!(seen.last().unwrap().kind, RunEvent::Stats(_)));
    assert!(seen.iter().any(|e| matches!(
        &e.kind,
        RunEvent::FinalAnswer { answer: Some(a), .. } if a == "4"
    )));
    assert_eq!(
        seen, kept,
        "the store and the sink see the same events in order"
    );
}

#[test]
fn a_cancelled_run_ends_with_cancelled_once() {
    let fixture = fixture();
    // The front end goes away after the fifth event (mid-plan).
    let (seen, kept, outcome) = run_with(&fixture, Scripted::new(Script::Answer), Some(5));
    assert!(outcome.is_err());
    assert_one_terminal_last(&seen);
    assert_eq!(seen.last().unwrap().kind, RunEvent::Cancelled);
    assert_eq!(seen, kept);
}

#[test]
fn a_backend_failing_mid_stream_ends_with_one_error() {
    let fixture = fixture();
    let (seen, kept, outcome) = run_with(&fixture, Scripted::new(Script::FailMidStream), None);
    let message = outcome.unwrap_err();
    assert!(message.contains("the connection broke"), "{message}");
    assert_one_terminal_last(&seen);
    assert!(
        seen.iter()
            .any(|e| matches!(e.kind, RunEvent::PlanDelta { .. })),
        "text streamed before the failure"
    );
    match &seen.last().unwrap().kind {
        RunEvent::Error { message } => assert!(message.contains("the connection broke")),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(seen, kept);
}

#[test]
fn a_panicking_backend_still_ends_the_stream_with_one_error() {
    let fixture = fixture();
    let (seen, kept, outcome) = run_with(&fixture, Scripted::new(Script::Panic), None);
    assert!(outcome.unwrap_err().contains("scripted backend bug"));
    assert_one_terminal_last(&seen);
    assert!(matches!(seen.last().unwrap().kind, RunEvent::Error { .. }));
    assert_eq!(seen, kept);
}

#[test]
fn a_store_that_refuses_writes_does_not_change_the_stream() {
    let fixture = fixture();
    let path = fixture.store.path().to_path_buf();
    // Another program makes the database refuse every event (a real SQLite refusal).
    fixture.runtime.block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
        )
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
    });
    let (seen, kept, outcome) = run_with(&fixture, Scripted::new(Script::Answer), None);
    outcome.unwrap();
    assert_one_terminal_last(&seen);
    assert!(matches!(seen.last().unwrap().kind, RunEvent::Stats(_)));
    assert!(kept.is_empty(), "the refused events were not stored");
}

#[test]
fn requests_are_checked_before_anything_starts() {
    let limits = RunLimits {
        max_candidates: 4,
        max_tokens: 1000,
    };
    let mut empty = request();
    empty.problem = "  ".into();
    assert!(RunHost::validate(&empty, limits).is_err());
    let mut many = request();
    many.settings.candidates = 5;
    assert!(RunHost::validate(&many, limits)
        .unwrap_err()
        .0
        .contains("at most 4"));
    let mut long = request();
    long.settings.sampling.max_tokens = 1001;
    assert!(RunHost::validate(&long, limits).is_err());
    let mut hot = request();
    hot.settings.sampling.temperature = -1.0;
    assert!(RunHost::validate(&hot, limits).is_err());
    let mut fits = request();
    fits.settings.sampling.max_tokens = 1000;
    assert_eq!(RunHost::validate(&fits, limits), Ok(()));
}
