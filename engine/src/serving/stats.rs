//! What the scheduler has done since it started, for a server's `/metrics`: prompt and
//! generated tokens, time spent in batch steps, requests refused for a full queue, and the
//! time from a request's submission to its first generated token.
//!
//! Counters are atomics so the scheduler thread adds to them without taking the queue's lock,
//! and a scrape reads them without stopping the batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the time-to-first-token histogram's buckets (the last,
/// unbounded bucket is implied). From an idle server's tens of milliseconds to a full queue's
/// minutes.
pub const FIRST_TOKEN_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The scheduler's running totals (shared by its handles and its thread).
#[derive(Default)]
pub(crate) struct Counters {
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    step_nanos: AtomicU64,
    refused_busy: AtomicU64,
    /// Observations per bucket of [`FIRST_TOKEN_BUCKETS`] (not cumulative), then the rest.
    first_token: [AtomicU64; FIRST_TOKEN_BUCKETS.len() + 1],
    first_token_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn add_prompt_tokens(&self, tokens: usize) {
        self.prompt_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_generated_tokens(&self, tokens: usize) {
        self.generated_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_step_time(&self, time: Duration) {
        self.step_nanos
            .fetch_add(saturating_nanos(time), Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self) {
        self.refused_busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe_first_token(&self, wait: Duration) {
        let seconds = wait.as_secs_f64();
        let bucket = FIRST_TOKEN_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FIRST_TOKEN_BUCKETS.len());
        self.first_token[bucket].fetch_add(1, Ordering::Relaxed);
        self.first_token_nanos
            .fetch_add(saturating_nanos(wait), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ServeStats {
        let mut cumulative = Vec::with_capacity(FIRST_TOKEN_BUCKETS.len());
        let mut total = 0;
        for (i, count) in self.first_token.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            if i < FIRST_TOKEN_BUCKETS.len() {
                cumulative.push(total);
            }
        }
        ServeStats {
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            generated_tokens: self.generated_tokens.load(Ordering::Relaxed),
            step_seconds: nanos_to_seconds(self.step_nanos.load(Ordering::Relaxed)),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
            first_token: Histogram {
                bounds: &FIRST_TOKEN_BUCKETS,
                cumulative,
                count: total,
                sum_seconds: nanos_to_seconds(self.first_token_nanos.load(Ordering::Relaxed)),
            },
        }
    }
}

/// The totals at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeStats {
    /// Prompt tokens of admitted requests (those taken from the prefix cache included).
    pub prompt_tokens: u64,
    /// Tokens sampled for every row.
    pub generated_tokens: u64,
    /// Seconds spent in batch steps (prefill and decode): generated tokens over this is the
    /// batch's throughput while busy.
    pub step_seconds: f64,
    /// Requests refused because the queue was full.
    pub refused_busy: u64,
    /// Time from submission to the first generated token, per request.
    pub first_token: Histogram,
}

/// A histogram as Prometheus reports one: cumulative counts per upper bound, then the count
/// and sum of every observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// `cumulative[i]`: observations at most `bounds[i]`.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

fn saturating_nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

fn nanos_to_seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_token_times_fall_into_cumulative_buckets() {
        let counters = Counters::default();
        counters.observe_first_token(Duration::from_millis(10));
        counters.observe_first_token(Duration::from_millis(300));
        counters.observe_first_token(Duration::from_secs(500));
        let stats = counters.snapshot();
        let h = &stats.first_token;
        assert_eq!(h.count, 3);
        assert_eq!(h.cumulative.len(), FIRST_TOKEN_BUCKETS.len());
        assert_eq!(h.cumulative[0], 1, "10 ms <= 25 ms");
        // 300 ms is in the 0.5 s bucket (index 4), not the 0.25 s one.
        assert_eq!(h.cumulative[3], 1);
        assert_eq!(h.cumulative[4], 2);
        // 500 s exceeds every bound: only the count (the +Inf bucket) has it.
        assert_eq!(*h.cumulative.last().unwrap(), 2);
        assert!((h.sum_seconds - 500.31).abs() < 1e-6, "{}", h.sum_seconds);
    }

    #[test]
    fn totals_add_up() {
        let counters = Counters::default();
        counters.add_prompt_tokens(12);
        counters.add_prompt_tokens(3);
        counters.add_generated_tokens(7);
        counters.add_step_time(Duration::from_millis(1500));
        counters.count_refused();
        let stats = counters.snapshot();
        assert_eq!(stats.prompt_tokens, 15);
        assert_eq!(stats.generated_tokens, 7);
        assert!((stats.step_seconds - 1.5).abs() < 1e-9);
        assert_eq!(stats.refused_busy, 1);
        assert_eq!(stats.first_token.count, 0);
    }
}
