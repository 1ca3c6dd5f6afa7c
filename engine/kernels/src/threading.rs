//! Thread pool for matmuls.
//!
//! A dedicated rayon pool with `n - 1` workers: the calling thread always takes
//! part (so `n` threads work) and picks chunks from the same atomic counter as the
//! workers (dynamic balance when a core is busy with something else). rayon
//! workers spin briefly before sleeping, which keeps back-to-back decode matmuls
//! cheap to dispatch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static THREADS: AtomicUsize = AtomicUsize::new(0);
type PoolSlot = Option<(usize, Arc<rayon::ThreadPool>)>;
static POOL: Mutex<PoolSlot> = Mutex::new(None);

/// Sets the number of threads used by matmul (`0` = available parallelism).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Number of threads matmul will use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn pool(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, p)) = g.as_ref() {
        if *k == n {
            return Some(p.clone());
        }
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n - 1)
        .thread_name(|i| format!("k2-kernels-{i}"))
        .build()
        .ok()?;
    let p = Arc::new(p);
    *g = Some((n, p.clone()));
    Some(p)
}

/// Runs `f` on every item, spread over `threads` threads (the caller included).
pub(crate) fn for_each<T: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) + Sync) {
    let threads = threads.min(items.len());
    let pool = if threads > 1 { pool(threads) } else { None };
    let Some(pool) = pool else {
        items.into_iter().for_each(f);
        return;
    };
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(i) else { break };
        let item = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(item) = item {
            f(item);
        }
    };
    pool.in_place_scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| work());
        }
        work();
    });
}
