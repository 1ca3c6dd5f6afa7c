//! Continuous batching for a server: requests from many clients are decoded together as rows
//! of one batch, joining and leaving between forward passes.
//!
//! One scheduler thread owns the model's KV cache. Each step it admits waiting requests while
//! rows are free (first come, first served), feeds every active row one token (or a slice of
//! its prompt, within a per-step prefill budget so a long prompt never stalls the others), and
//! streams each row's text to its client over a channel. A client that goes away (its channel
//! closed) or cancels loses its rows at the next step. The queue is bounded: a full queue is
//! refused at once with a retry estimate, never left to time out.
//!
//! Rows are numerically independent (see [`crate::decode::batched`]), so a request decodes exactly
//! the tokens it would decode alone, whoever shares its batch.

mod backend;
mod scheduler;
mod stats;

pub use backend::ScheduledBackend;
pub use scheduler::{Load, Scheduler, SchedulerConfig, ServeEvent, ServeRequest};
pub use stats::{Histogram, ServeStats, FIRST_TOKEN_BUCKETS};
