//! Per-client limits, so one student cannot fill the batch for the whole class: a request rate
//! (a token bucket per identity) and how many scaffold runs and chat completions one identity
//! may have open at once. A refusal is 429 with `Retry-After`. The teacher is exempt unless
//! the server is started with `--limit-teacher`.
//!
//! Limits are keyed on `Identity::limit_key`, which comes from the token, never from the
//! request's body.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::metrics::Rejection;
use crate::state::AppState;

/// What `k2 serve` allows one identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests per minute (bursts up to this many); 0: no limit.
    pub rate_per_minute: u32,
    /// Scaffold runs (`POST /v1/k2/runs`) streaming at once; 0: no limit.
    pub runs_per_client: usize,
    /// Chat completions (`POST /v1/chat/completions`) at once; 0: no limit.
    pub chats_per_client: usize,
    /// Apply the limits to the teacher too (a lab testing its limits with one token).
    pub limit_teacher: bool,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            rate_per_minute: 120,
            runs_per_client: 1,
            chats_per_client: 2,
            limit_teacher: false,
        }
    }
}

/// The routes whose requests hold a slot while their answer streams.
const RUNS_ROUTE: &str = "/v1/k2/runs";
const CHAT_ROUTE: &str = "/v1/chat/completions";

/// How long a client refused for a busy slot is asked to wait: runs and completions last
/// seconds to minutes, and nothing tells when this client's will end.
const SLOT_RETRY_S: u64 = 5;

/// How long a request waits for its client's slot before it is refused: a page that stops its
/// run and starts another hangs up a moment before it asks again, and the server notices the
/// hang-up (and frees the slot) a moment later.
const SLOT_GRACE: Duration = Duration::from_secs(1);

/// The limits' state: one bucket per identity, and the slots in use.
pub struct ClientGuard {
    limits: ClientLimits,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    runs: Arc<Slots>,
    chats: Arc<Slots>,
}

impl ClientGuard {
    pub fn new(limits: ClientLimits) -> Self {
        ClientGuard {
            limits,
            buckets: Mutex::new(HashMap::new()),
            runs: Arc::new(Slots::new(limits.runs_per_client)),
            chats: Arc::new(Slots::new(limits.chats_per_client)),
        }
    }

    /// Takes one request from `key`'s bucket; `Err`: how long until one is available.
    fn take_request(&self, key: &str) -> Result<(), Duration> {
        if self.limits.rate_per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::full(self.limits.rate_per_minute, now))
            .take(now)
    }
}

/// A token bucket: `capacity` requests at once, refilled at `capacity` per minute.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn full(per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.max(1));
        TokenBucket {
            capacity,
            per_second: capacity / 60.0,
            tokens: capacity,
            updated: now,
        }
    }

    /// Takes one token at `now`; `Err`: the time until one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.per_second,
        ))
    }
}

/// Counted slots per key: at most `limit` held at once by one key (0: no limit).
#[derive(Debug)]
pub struct Slots {
    limit: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Slots {
            limit,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `key`, released when the guard drops; `None` when `key` holds `limit`.
    pub fn try_take(self: &Arc<Self>, key: &str) -> Option<SlotGuard> {
        let mut held = lock(&self.held);
        let count = held.entry(key.to_owned()).or_insert(0);
        if self.limit > 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(SlotGuard {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    /// [`Slots::try_take`], waiting up to `grace` for one of `key`'s slots to be given back.
    pub async fn take_within(self: &Arc<Self>, key: &str, grace: Duration) -> Option<SlotGuard> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if let Some(held) = self.try_take(key) {
                return Some(held);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Slots `key` holds now.
    #[cfg(test)]
    pub fn held(&self, key: &str) -> usize {
        lock(&self.held).get(key).copied().unwrap_or(0)
    }
}

/// One held slot; dropping it gives it back.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<Slots>,
    key: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut held = lock(&self.slots.held);
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while counting must not lock every client out.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The middleware (after authentication): the rate, then a slot for runs and completions,
/// held until the answer's body, a stream for SSE, has been sent or dropped.
pub async fn per_client(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let guard = &state.clients;
    let Some(identity) = request.extensions().get::<Identity>() else {
        return next.run(request).await;
    };
    if identity.is_teacher() && !guard.limits.limit_teacher {
        return next.run(request).await;
    }
    let key = identity.limit_key();
    if let Err(wait) = guard.take_request(&key) {
        state.metrics.reject(Rejection::Rate);
        let minute = guard.limits.rate_per_minute;
        return ApiError::too_many_requests(
            format!("too many requests: this server allows {minute} a minute per client"),
            wait.as_secs_f64().ceil() as u64,
        )
        .into_response();
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str());
    let slot = match (request.method(), route) {
        (&Method::POST, Some(RUNS_ROUTE)) => Some((&guard.runs, Rejection::Runs, "scaffold runs")),
        (&Method::POST, Some(CHAT_ROUTE)) => {
            Some((&guard.chats, Rejection::Chats, "chat completions"))
        }
        _ => None,
    };
    let held = match slot {
        None => None,
        Some((slots, reason, what)) => match slots.take_within(&key, SLOT_GRACE).await {
            Some(held) => Some(held),
            None => {
                state.metrics.reject(reason);
                return ApiError::too_many_requests(
                    format!(
                        "you already have {} {what} open (this server's limit per client); \
                         wait for one to finish",
                        slots.limit
                    ),
                    SLOT_RETRY_S,
                )
                .into_response();
            }
        },
    };
    let response = next.run(request).await;
    match held {
        Some(held) => response.map(|body| Body::new(HoldWhileSending { body, _held: held })),
        None => response,
    }
}

/// A response body that keeps a slot until it is sent whole or dropped (the client left).
struct HoldWhileSending {
    body: Body,
    _held: SlotGuard,
}

impl http_body::Body for HoldWhileSending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3, start);
        for _ in 0..3 {
            assert!(bucket.take(start).is_ok());
        }
        // 3 a minute: one token every 20 s.
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 20.0).abs() < 1e-6, "{wait:?}");
        let wait = bucket.take(start + Duration::from_secs(5)).unwrap_err();
        assert!((wait.as_secs_f64() - 15.0).abs() < 1e-6, "{wait:?}");
        assert!(bucket.take(start + Duration::from_secs(20)).is_ok());
        assert!(bucket.take(start + Duration::from_secs(20)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(bucket.take(later).is_ok());
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn slots_are_counted_per_key_and_given_back_on_drop() {
        let slots = Arc::new(Slots::new(2));
        let a1 = slots.try_take("student:1").unwrap();
        let _a2 = slots.try_take("student:1").unwrap();
        assert!(
            slots.try_take("student:1").is_none(),
            "the third is refused"
        );
        let _b = slots
            .try_take("student:2")
            .expect("another client is not affected");
        drop(a1);
        assert_eq!(slots.held("student:1"), 1);
        assert!(slots.try_take("student:1").is_some());
        assert_eq!(
            slots.held("student:1"),
            1,
            "the guard above was dropped at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_given_back_within_the_grace_is_taken() {
        let slots = Arc::new(Slots::new(1));
        let held = slots.try_take("k").unwrap();
        let started = tokio::time::Instant::now();
        assert!(slots
            .take_within("k", Duration::from_secs(1))
            .await
            .is_none());
        assert!(started.elapsed() >= Duration::from_secs(1));
        let giver = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let taken = slots.take_within("k", Duration::from_secs(1)).await;
        assert!(taken.is_some(), "given back after 300 ms");
        giver.await.unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        let slots = Arc::new(Slots::new(0));
        let held: Vec<_> = (0..100).map(|_| slots.try_take("k").unwrap()).collect();
        assert_eq!(slots.held("k"), 100);
        drop(held);
        assert_eq!(slots.held("k"), 0);
        let guard = ClientGuard::new(ClientLimits {
            rate_per_minute: 0,
            ..ClientLimits::default()
        });
        assert!((0..1000).all(|_| guard.take_request("k").is_ok()));
    }

    #[test]
    fn each_identity_has_its_own_bucket() {
        let guard = ClientGuard::new(ClientLimits {
            rate_per_minute: 2,
            ..ClientLimits::default()
        });
        assert!(guard.take_request("student:1").is_ok());
        assert!(guard.take_request("student:1").is_ok());
        assert!(guard.take_request("student:1").is_err());
        assert!(guard.take_request("student:2").is_ok());
    }
}
