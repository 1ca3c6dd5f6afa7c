//! The run host: what every front end does to run the scaffold, written once.
//!
//! Given a [`RunRequest`](k2_protocol::RunRequest) and [`Backends`], a [`RunHost`] validates
//! the request, opens the stored run, runs the [`Pipeline`](k2_scaffold::Pipeline), records
//! every event in the session store and hands it to the front end's [`RunSink`] (terminal,
//! SSE, Tauri channel), and guarantees that the stream ends with exactly one terminal event
//! whatever happens (a backend failure, a cancellation, a panic, a store that refuses writes).
//! `k2 solve`, `k2 eval`, `k2 serve` and the desktop app are adapters over it.

mod backends;
mod host;
mod review;

pub use backends::{Backends, ModelCache};
pub use host::{HostError, RunHost, RunLimits, RunSink, SinkFlow, StartedRun};
pub use review::ModelWorkReviewer;
