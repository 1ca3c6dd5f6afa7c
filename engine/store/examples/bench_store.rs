//! Session store benchmark: a 2,000 events/s stream (the WSE-emulator's speed) recorded while
//! a loop "generates", against the same loop with no store (the ratio is the cost to
//! generation); the recorder's top sustained rate; and listing/search over 10,000 runs.
//!
//! `cargo run --release -p k2-store --example bench_store [-- DB_DIR]`

use std::time::{Duration, Instant};

use k2_protocol::{Event, RunEvent, RunSettings, TextPart};
use k2_store::{NewProblem, PageRequest, RunConfig, RunRecorder, Store};

const RATE: u64 = 2_000;
const SECONDS: u64 = 5;
const RUNS: usize = 10_000;

fn delta(seq: u64) -> Event {
    Event {
        seq,
        elapsed_ms: seq / 2,
        kind: RunEvent::CandidateDelta {
            candidate: (seq % 3) as usize,
            part: TextPart::Reasoning,
            text: " x^2".into(),
        },
    }
}

fn config() -> RunConfig {
    RunConfig {
        solver: "bench".into(),
        planner: None,
        draft: None,
        device: "cpu".into(),
        settings: RunSettings::default(),
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// A paced "generation loop": per event, a little work, then the sink. Returns the time spent
/// in the sink per event.
fn paced_loop(sink: &mut dyn FnMut(&Event)) -> Vec<Duration> {
    let total = RATE * SECONDS;
    let start = Instant::now();
    let mut costs = Vec::with_capacity(total as usize);
    for seq in 0..total {
        let due = start + Duration::from_micros(seq * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let event = delta(seq);
        let t = Instant::now();
        sink(&event);
        costs.push(t.elapsed());
    }
    costs
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(tempdir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let store = runtime.block_on(Store::open(&path)).unwrap();
    let session = runtime.block_on(store.create_session("bench")).unwrap();
    let problem = runtime
        .block_on(store.add_problem(&NewProblem::typed("bench")))
        .unwrap();

    // 1. The paced stream, without and with the store.
    let mut baseline = paced_loop(&mut |e| {
        std::hint::black_box(e);
    });
    let run = runtime
        .block_on(store.start_run(session, problem, &config(), Default::default()))
        .unwrap();
    let recorder = {
        let _context = runtime.enter();
        RunRecorder::start(&store, run)
    };
    let wall = Instant::now();
    let mut recorded = paced_loop(&mut |e| recorder.record(e));
    recorder.record(&Event {
        seq: RATE * SECONDS,
        elapsed_ms: 0,
        kind: RunEvent::Cancelled,
    });
    let summary = runtime.block_on(recorder.finish()).unwrap();
    let wall = wall.elapsed();
    let stored = runtime.block_on(store.event_count(run)).unwrap();
    assert_eq!(stored, RATE * SECONDS + 1, "every event stored");
    let base_mean = baseline.iter().sum::<Duration>() / baseline.len() as u32;
    let rec_mean = recorded.iter().sum::<Duration>() / recorded.len() as u32;
    println!(
        "paced stream: {RATE} events/s for {SECONDS} s, {stored} events stored in {:.2} s",
        wall.as_secs_f64()
    );
    println!(
        "  per event in the generation loop: no store p99 {:.2} us, with store p99 {:.2} us (mean {:.2} vs {:.2} us)",
        percentile(&mut baseline, 0.99).as_secs_f64() * 1e6,
        percentile(&mut recorded, 0.99).as_secs_f64() * 1e6,
        base_mean.as_secs_f64() * 1e6,
        rec_mean.as_secs_f64() * 1e6,
    );
    println!(
        "  commits: {} (about {:.0} events each), slowest commit {:.2} ms",
        summary.commits,
        summary.events as f64 / summary.commits as f64,
        summary.slowest_commit_s * 1e3
    );

    // 2. Top sustained rate: events queued as fast as possible, until all are on disk.
    let burst = 200_000u64;
    let run = runtime
        .block_on(store.start_run(session, problem, &config(), Default::default()))
        .unwrap();
    let recorder = {
        let _context = runtime.enter();
        RunRecorder::start(&store, run)
    };
    let t = Instant::now();
    for seq in 0..burst {
        recorder.record(&delta(seq));
    }
    let summary = runtime.block_on(recorder.finish()).unwrap();
    let elapsed = t.elapsed();
    println!(
        "burst: {burst} events on disk in {:.2} s = {:.0} events/s sustained ({} commits, slowest {:.1} ms)",
        elapsed.as_secs_f64(),
        burst as f64 / elapsed.as_secs_f64(),
        summary.commits,
        summary.slowest_commit_s * 1e3
    );

    // 3. History of 10,000 runs: first page and a full-text query.
    let texts: Vec<String> = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/gsm8k-dev.jsonl"),
    )
    .map(|t| {
        t.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["problem"].as_str().map(String::from))
            .collect()
    })
    .unwrap_or_else(|_| vec!["How many apples are left?".into()]);
    let t = Instant::now();
    runtime.block_on(async {
        for i in 0..RUNS {
            let problem = store
                .add_problem(&NewProblem::typed(texts[i % texts.len()].clone()))
                .await
                .unwrap();
            store
                .start_run(session, problem, &config(), Default::default())
                .await
                .unwrap();
        }
    });
    println!("created {RUNS} runs in {:.1} s", t.elapsed().as_secs_f64());
    let mut list_times = Vec::new();
    let mut search_times = Vec::new();
    let mut hits = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let page = runtime
            .block_on(store.list_runs(None, PageRequest::first(20)))
            .unwrap();
        list_times.push(t.elapsed());
        assert_eq!(page.items.len(), 20);
        let t = Instant::now();
        hits = runtime.block_on(store.search("apples", 20)).unwrap().len();
        search_times.push(t.elapsed());
    }
    println!(
        "first page of {} runs: median {:.2} ms, p99 {:.2} ms",
        RUNS + 2,
        percentile(&mut list_times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut list_times, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "FTS query \"apples\" ({hits} shown): median {:.2} ms, p99 {:.2} ms",
        percentile(&mut search_times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut search_times, 0.99).as_secs_f64() * 1e3
    );
}

fn tempdir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("k2-store-bench-{}", std::process::id()))
}
