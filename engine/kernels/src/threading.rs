//! Matmul thread pool: `n - 1` persistent workers plus the calling thread.
//!
//! Decode runs ~200 small matmuls per token, so dispatch latency matters more than
//! anything else here. Workers spin on a generation counter for a short while
//! after each job (a new job is picked up within ~100 ns) and only then sleep on a
//! condvar. Chunks are claimed from an atomic counter by whoever is free, and the
//! caller waits only for chunks a worker has actually claimed: a worker that is
//! descheduled (the other core busy) never stalls the call.
//!
//! Jobs are `Arc`ed and own everything they touch (`'static`), so this needs no
//! unsafe code; results come back through a mutex-protected buffer.

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

struct Job {
    task: Arc<dyn Task>,
    n: usize,
    next: AtomicUsize,
    done: AtomicUsize,
}

impl Job {
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                break;
            }
            self.task.run(i);
            self.done.fetch_add(1, Ordering::Release);
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

fn worker_loop(sh: Arc<Shared>) {
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
            job.work();
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
            .spawn(move || worker_loop(sh))
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
    let job = Arc::new(Job {
        task,
        n,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let sh = &pool.shared;
    *sh.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
    sh.gen.fetch_add(1, Ordering::AcqRel);
    if *sh.sleepers.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
        sh.wake.notify_all();
    }
    job.work();
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
