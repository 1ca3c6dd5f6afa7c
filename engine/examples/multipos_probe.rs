//! Times one forward pass over 1..=16 new positions after a 100-token context (what a
//! speculative verification pass costs by its length), on `K2_THREADS` threads (default 2).
use candle_core::Device;
use k2_engine::loader::load_model;
use k2_engine::model::LogitsFor;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let lm = load_model(std::path::Path::new(&path), &Device::Cpu, &mut |_| {}).unwrap();
    let threads = std::env::var("K2_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    k2_engine::set_cpu_threads(threads.unwrap_or(2));
    let m = &lm.model;
    let ctx: Vec<u32> = (0..100).map(|i| 1000 + i).collect();
    for t in 1..=16usize {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let mut c = m.new_cache(None);
            c.add_row().unwrap();
            m.forward(&mut c, &[&ctx], LogitsFor::Last).unwrap();
            let new: Vec<u32> = (0..t as u32).map(|i| 2000 + i).collect();
            let s = Instant::now();
            m.forward(&mut c, &[&new], LogitsFor::All).unwrap();
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!("t={t}: {:.1} ms", best * 1e3);
    }
}
