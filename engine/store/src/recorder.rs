//! Recording a run while it streams. [`RunRecorder::record`] only appends the event to an
//! in-memory queue (an uncontended lock, no system call, no thread woken); a background task
//! wakes every [`FLUSH_INTERVAL`], or early when [`FLUSH_EVENTS`] are waiting, commits the
//! queue in one transaction and keeps the run's cached columns (plan, answer, status) in step
//! with the log. Waking the writer per event cost the generation loop a futex wake and, on a
//! busy 2-core machine, a context switch: p99 1.5 ms per event in `bench_store`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k2_protocol::{Event, RunEvent};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::error::Result;
use crate::events::append_events;
use crate::types::{RunId, RunStatus};
use crate::Store;

/// The longest an event waits in memory before its commit starts.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Commit early when this many events are waiting.
pub const FLUSH_EVENTS: usize = 512;
/// How often an idle recorder tells the database its process is alive (during a long prefill
/// nothing else is written).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Consecutive failed commits (a full disk that stays full, a database another program broke)
/// after which the recorder gives up; [`RunRecorder::finish`] then reports the error. Failed
/// events stay queued and are retried at the next tick until then.
const MAX_RETRIES: u32 = 20;

/// Records one run's events into the store. Dropping it without [`RunRecorder::finish`] still
/// commits everything queued (the background task drains the queue and ends).
pub struct RunRecorder {
    run: RunId,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Result<RecordSummary>>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    events: Vec<Event>,
    closed: bool,
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        let writer = tokio::spawn(write_loop(store.clone(), run, shared.clone()));
        RunRecorder {
            run,
            shared,
            writer: Some(writer),
        }
    }

    pub fn run(&self) -> RunId {
        self.run
    }

    /// Queues an event; never blocks on I/O. Events must come in `seq` order, as the engine
    /// emits them.
    pub fn record(&self, event: &Event) {
        let waiting = {
            let mut queue = self.shared.lock();
            queue.events.push(event.clone());
            queue.events.len()
        };
        if waiting == FLUSH_EVENTS {
            self.shared.wake.notify_one();
        }
    }

    /// Commits everything queued and ends the run's recording. A run whose stream never
    /// reached a final event (stats, error, cancellation) is marked `failed`.
    pub async fn finish(mut self) -> Result<RecordSummary> {
        self.shared.close();
        let writer = self.writer.take().expect("the writer is awaited once");
        match writer.await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

impl Drop for RunRecorder {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while pushing leaves the Vec valid; keep recording.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

async fn write_loop(store: Store, run: RunId, shared: Arc<Shared>) -> Result<RecordSummary> {
    let mut summary = RecordSummary::default();
    let mut ended = false;
    let mut failures = 0;
    let mut last_write = Instant::now();
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        let (batch, closed) = {
            let mut queue = shared.lock();
            (std::mem::take(&mut queue.events), queue.closed)
        };
        if batch.is_empty() {
            if closed {
                break;
            }
            if last_write.elapsed() >= HEARTBEAT {
                if let Err(e) = store.touch_run(run).await {
                    tracing::warn!(run, error = %e, "could not record the run's heartbeat");
                }
                last_write = Instant::now();
            }
            continue;
        }
        ended |= batch.iter().any(|e| e.kind.is_terminal());
        match commit(&store, run, &batch, &mut summary).await {
            Ok(()) => {
                failures = 0;
                last_write = Instant::now();
            }
            Err(e) if failures >= MAX_RETRIES => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::error!(run, error = %e, waiting = batch.len(), "storing events failed; retrying");
                // Put the batch back in front of what arrived meanwhile, keeping the order.
                let mut queue = shared.lock();
                let newer = std::mem::replace(&mut queue.events, batch);
                queue.events.extend(newer);
            }
        }
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
