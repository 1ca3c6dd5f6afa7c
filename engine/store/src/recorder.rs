//! Recording a run while it streams. [`RunRecorder::record`] only queues the event (no I/O, no
//! lock held by the generation loop); a background task commits queued events in one
//! transaction at most [`FLUSH_INTERVAL`] after the first of them arrived, or as soon as
//! [`FLUSH_EVENTS`] are waiting, and keeps the run's cached columns (plan, answer, status) in
//! step with the log.

use std::time::Duration;

use k2_protocol::{Event, RunEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

use crate::clock::now_ms;
use crate::error::Result;
use crate::events::append_events;
use crate::types::{RunId, RunStatus};
use crate::Store;

/// The longest an event waits in memory before it is committed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Commit at once when this many events are waiting.
pub const FLUSH_EVENTS: usize = 256;
/// How often an idle recorder tells the database its process is alive (during a long prefill
/// nothing else is written).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// After a failed commit (disk full, database locked for long), wait this long and retry,
/// keeping the events.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Consecutive failed commits after which the recorder gives up (a full disk that stays full,
/// a database another program broke); [`RunRecorder::finish`] then reports the error.
const MAX_RETRIES: u32 = 20;

/// Records one run's events into the store. Dropping it without [`RunRecorder::finish`] still
/// commits everything queued (the background task drains the queue).
pub struct RunRecorder {
    run: RunId,
    queue: mpsc::UnboundedSender<Event>,
    writer: JoinHandle<Result<RecordSummary>>,
}

/// What the background writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecordSummary {
    pub events: u64,
    pub commits: u64,
    /// The slowest commit, in seconds.
    pub slowest_commit_s: f64,
}

impl RunRecorder {
    /// Starts recording `run` on the current tokio runtime (call inside it, or inside
    /// `Runtime::enter`).
    pub fn start(store: &Store, run: RunId) -> RunRecorder {
        let (queue, events) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(store.clone(), run, events));
        RunRecorder { run, queue, writer }
    }

    pub fn run(&self) -> RunId {
        self.run
    }

    /// Queues an event; never blocks. Events must come in `seq` order, as the engine emits them.
    pub fn record(&self, event: &Event) {
        if self.queue.send(event.clone()).is_err() {
            tracing::error!(
                run = self.run,
                seq = event.seq,
                "session recorder stopped; event not stored"
            );
        }
    }

    /// Commits everything queued and ends the run's recording. A run whose stream never
    /// reached a final event (stats, error, cancellation) is marked `failed`.
    pub async fn finish(self) -> Result<RecordSummary> {
        drop(self.queue);
        match self.writer.await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

async fn write_loop(
    store: Store,
    run: RunId,
    mut events: mpsc::UnboundedReceiver<Event>,
) -> Result<RecordSummary> {
    let mut pending: Vec<Event> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut summary = RecordSummary::default();
    let mut ended = false;
    let mut failures = 0;
    loop {
        let received = match deadline {
            Some(deadline) => timeout_at(deadline, events.recv()).await,
            None => timeout(HEARTBEAT, events.recv()).await,
        };
        match received {
            Ok(Some(event)) => {
                ended |= event.kind.is_terminal();
                if pending.is_empty() {
                    deadline = Some(Instant::now() + FLUSH_INTERVAL);
                }
                pending.push(event);
                if pending.len() < FLUSH_EVENTS {
                    continue;
                }
            }
            Ok(None) => break,
            Err(_timed_out) if pending.is_empty() => {
                if let Err(e) = store.touch_run(run).await {
                    tracing::warn!(run, error = %e, "could not record the run's heartbeat");
                }
                continue;
            }
            Err(_timed_out) => {}
        }
        match commit(&store, run, &pending, &mut summary).await {
            Ok(()) => {
                pending.clear();
                deadline = None;
                failures = 0;
            }
            Err(e) if failures >= MAX_RETRIES => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::error!(run, error = %e, waiting = pending.len(), "storing events failed; retrying");
                deadline = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }
    // The queue is closed: the run is over. Everything left must reach the disk.
    if !pending.is_empty() {
        commit(&store, run, &pending, &mut summary).await?;
    }
    if !ended {
        store
            .end_run(
                run,
                RunStatus::Failed,
                Some("the run stopped without a final event"),
            )
            .await?;
    }
    Ok(summary)
}

/// One transaction: the events, then the run's cached columns.
async fn commit(
    store: &Store,
    run: RunId,
    events: &[Event],
    summary: &mut RecordSummary,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut tx = store.pool.begin().await?;
    append_events(&mut tx, run, events).await?;
    let cached = CachedColumns::from_events(events);
    let now = now_ms();
    if let Some(plan) = &cached.plan {
        sqlx::query("UPDATE runs SET plan = ? WHERE id = ?")
            .bind(plan)
            .bind(run)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(answer) = &cached.answer {
        sqlx::query("UPDATE runs SET answer = ? WHERE id = ?")
            .bind(answer)
            .bind(run)
            .execute(&mut *tx)
            .await?;
    }
    match cached.end {
        Some((status, error)) => {
            sqlx::query(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
            )
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(now)
            .bind(run)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE sessions SET updated_at = ? WHERE id = (SELECT session_id FROM runs WHERE id = ?)",
            )
            .bind(now)
            .bind(run)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ?")
                .bind(now)
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    summary.events += events.len() as u64;
    summary.commits += 1;
    summary.slowest_commit_s = summary
        .slowest_commit_s
        .max(started.elapsed().as_secs_f64());
    Ok(())
}

/// What a batch of events changes in the run's row.
#[derive(Default)]
struct CachedColumns {
    plan: Option<String>,
    answer: Option<String>,
    end: Option<(RunStatus, Option<String>)>,
}

impl CachedColumns {
    fn from_events(events: &[Event]) -> Self {
        let mut cached = CachedColumns::default();
        for event in events {
            match &event.kind {
                RunEvent::PlanFinished { plan, .. } => cached.plan = Some(plan.clone()),
                RunEvent::FinalAnswer {
                    answer: Some(answer),
                    ..
                } => cached.answer = Some(answer.clone()),
                RunEvent::Stats(_) => cached.end = Some((RunStatus::Done, None)),
                RunEvent::Cancelled => cached.end = Some((RunStatus::Cancelled, None)),
                RunEvent::Error { message } => {
                    cached.end = Some((RunStatus::Failed, Some(message.clone())))
                }
                _ => {}
            }
        }
        cached
    }
}

impl Store {
    async fn touch_run(&self, run: RunId) -> Result<()> {
        sqlx::query("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'")
            .bind(now_ms())
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn end_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
