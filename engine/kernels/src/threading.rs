//! Matmul thread pool: `n - 1` persistent workers plus the calling thread.
//!
//! Decode runs ~200 small matmuls per token, so dispatch latency matters more than
//! anything else here. Workers spin on a generation counter for a short while
//! after each job (a new job is picked up within ~100 ns) and only then sleep on a
//! condvar.
//!
//! The chunks of a job are split into one contiguous *lane* per thread (caller =
//! lane 0, worker `i` = lane `i`): each thread first claims the chunks of its own
//! lane in order, so it streams one contiguous region of weights (what DRAM and
//! the hardware prefetchers like best), then helps with the other lanes. Chunks
//! are claimed from per-lane atomic counters, and the caller waits only for
//! chunks a worker has actually claimed: a worker that is descheduled (the other
//! core busy) never stalls the call, the caller just takes over its lane.
//!
//! Jobs are `Arc`ed and own everything they touch (`'static`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

static THREADS: AtomicUsize = AtomicUsize::new(0);
static DEFAULT_THREADS: OnceLock<usize> = OnceLock::new();

/// How long an idle worker spins before sleeping.
const SPIN: Duration = Duration::from_micros(200);

/// Sets the number of threads used by matmul (`0` = available parallelism).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Number of threads matmul will use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        // Cached: available_parallelism reads cgroup files (~20 µs per call).
        0 => *DEFAULT_THREADS
            .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// A unit of parallel work: `run(i)` for every chunk `i < n`.
pub(crate) trait Task: Send + Sync + 'static {
    fn run(&self, chunk: usize);
}

/// Max lanes (threads that start on their own contiguous range).
const MAX_LANES: usize = 8;

/// A claim counter on its own cache line (the lanes' owners do not share lines).
#[repr(align(128))]
struct Lane(AtomicUsize);

struct Job {
    task: Arc<dyn Task>,
    n: usize,
    lanes: usize,
    /// Next unclaimed chunk of each lane (lane `l` = chunks `l*n/lanes..(l+1)*n/lanes`).
    next: [Lane; MAX_LANES],
    /// Chunks completed, published once per thread when it runs out of work.
    done: AtomicUsize,
}

impl Job {
    fn new(task: Arc<dyn Task>, n: usize, threads: usize) -> Job {
        let lanes = threads.clamp(1, MAX_LANES).min(n.max(1));
        Job {
            task,
            n,
            lanes,
            next: core::array::from_fn(|l| Lane(AtomicUsize::new(l * n / lanes))),
            done: AtomicUsize::new(0),
        }
    }

    /// Runs chunks until none is left, own lane `me` first.
    fn work(&self, me: usize) {
        let mut count = 0;
        for k in 0..self.lanes {
            let l = (me + k) % self.lanes;
            let end = (l + 1) * self.n / self.lanes;
            loop {
                let i = self.next[l].0.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                self.task.run(i);
                count += 1;
            }
        }
        if count > 0 {
            self.done.fetch_add(count, Ordering::Release);
        }
    }
}

struct Shared {
    gen: AtomicU64,
    /// Set when the pool is replaced (set_num_threads): workers exit.
    exit: AtomicBool,
    job: Mutex<Option<Arc<Job>>>,
    sleepers: Mutex<usize>,
    wake: Condvar,
}

struct Pool {
    shared: Arc<Shared>,
    workers: usize,
}

static POOL: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

fn worker_loop(sh: Arc<Shared>, me: usize) {
    let mut seen = sh.gen.load(Ordering::Acquire);
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = sh.gen.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut s = sh.sleepers.lock().unwrap_or_else(|e| e.into_inner());
                *s += 1;
                while sh.gen.load(Ordering::Acquire) == seen {
                    s = sh.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                *s -= 1;
            }
        }
        if sh.exit.load(Ordering::Acquire) {
            return;
        }
        let job = sh.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(job) = job {
            job.work(me);
        }
    }
}

fn pool(threads: usize) -> Arc<Pool> {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = g.as_ref() {
        if p.workers + 1 == threads {
            return p.clone();
        }
    }
    // A resized pool replaces the old one, whose workers exit.
    if let Some(old) = g.take() {
        let sh = &old.shared;
        sh.exit.store(true, Ordering::Release);
        sh.gen.fetch_add(1, Ordering::AcqRel);
        let _s = sh.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        sh.wake.notify_all();
    }
    let shared = Arc::new(Shared {
        gen: AtomicU64::new(0),
        exit: AtomicBool::new(false),
        job: Mutex::new(None),
        sleepers: Mutex::new(0),
        wake: Condvar::new(),
    });
    let mut workers = 0;
    for i in 1..threads {
        let sh = shared.clone();
        let ok = std::thread::Builder::new()
            .name(format!("k2-kernels-{i}"))
            .spawn(move || worker_loop(sh, i))
            .is_ok();
        workers += ok as usize;
    }
    let p = Arc::new(Pool { shared, workers });
    *g = Some(p.clone());
    p
}

/// Runs `task.run(i)` for `i in 0..n` on up to `threads` threads (caller included)
/// and returns when all chunks are done.
pub(crate) fn run(task: Arc<dyn Task>, n: usize, threads: usize) {
    if threads <= 1 || n <= 1 {
        (0..n).for_each(|i| task.run(i));
        return;
    }
    let pool = pool(threads);
    let job = Arc::new(Job::new(task, n, pool.workers + 1));
    let sh = &pool.shared;
    *sh.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
    sh.gen.fetch_add(1, Ordering::AcqRel);
    if *sh.sleepers.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
        sh.wake.notify_all();
    }
    job.work(0);
    // Only chunks claimed by running workers remain; they finish shortly.
    let mut spins = 0u32;
    while job.done.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            std::thread::yield_now();
        }
    }
    // Drop the slot's reference so buffers owned by the job can be reused.
    let mut slot = sh.job.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
        *slot = None;
    }
}
