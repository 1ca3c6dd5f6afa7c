//! Times one decode step (one new token per row) for 1..=32 rows that each hold 200 cached
//! positions (`--context N` for another count): the cost of serving more clients at once.
//! `--rows R --steps S` repeats one size (for `perf record`).
use candle_core::Device;
use k2_engine::loader::load_model;
use k2_engine::model::LogitsFor;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let lm = load_model(std::path::Path::new(path), &Device::Cpu, &mut |_| {}).unwrap();
    let m = &lm.model;
    let context_len = flag("--context").unwrap_or(200) as u32;
    let context: Vec<u32> = (0..context_len).map(|i| 1000 + i).collect();
    let sizes = match flag("--rows") {
        Some(r) => vec![r],
        None => vec![1, 2, 4, 8, 16, 32],
    };
    let steps = flag("--steps").unwrap_or(8);
    for rows in sizes {
        let mut cache = m.new_cache(Some(context.len() + 64));
        for r in 0..rows {
            cache.add_row().unwrap();
            let mut batch: Vec<&[u32]> = vec![&[]; rows];
            batch.truncate(r + 1);
            batch[r] = &context;
            batch.resize(rows.min(r + 1), &[]);
            // Rows added so far; later rows do not exist yet.
            m.forward(&mut cache, &batch, LogitsFor::Last).unwrap();
        }
        let tokens: Vec<[u32; 1]> = (0..rows).map(|r| [3000 + r as u32]).collect();
        let batch: Vec<&[u32]> = tokens.iter().map(|t| &t[..]).collect();
        let mut best = f64::MAX;
        for _ in 0..steps {
            let started = Instant::now();
            m.forward(&mut cache, &batch, LogitsFor::Last).unwrap();
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "rows={rows}: {:.1} ms per step, {:.2} ms per row, {:.0} tok/s",
            best * 1e3,
            best * 1e3 / rows as f64,
            rows as f64 / best
        );
    }
}
