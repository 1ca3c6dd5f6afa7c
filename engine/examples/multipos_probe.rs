//! Times one forward pass over 1..=16 new positions after a 100-token context (`K2_CONTEXT`) (what a
//! speculative verification pass costs by its length), on `K2_THREADS` threads (default 2),
//! with the kernels' weight prefetch on and off in turn (`k2_kernels::set_weight_prefetch`),
//! in this one process, and their ratio.
//! `cargo run --release -p k2-engine --example multipos_probe -- MODEL.gguf`
//! `K2_POSITIONS=T` instead repeats passes of that one length over one context for a few
//! seconds, prefetch on (for `perf record`: the context's prefill is then a small part of the
//! profile).
//! `K2_SHAPES="1,1,1 1,1,4 2,2,2"` instead times batched passes, one per shape: as many rows as
//! the shape has, forked from the context, each row feeding its number of positions (what a
//! best-of-3 verification pass costs by how its drafts fall on the rows); median of 7.
use candle_core::Device;
use k2_engine::loader::load_model;
use k2_engine::model::{LogitsFor, Model};
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: multipos_probe MODEL.gguf");
    let lm = load_model(std::path::Path::new(&path), &Device::Cpu, &mut |_| {}).unwrap();
    let threads = std::env::var("K2_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    k2_engine::set_cpu_threads(threads.unwrap_or(2));
    let m = &lm.model;
    // `K2_CONTEXT=N`: the context's length (100 by default; best-of-3 rows reach 400).
    let context = std::env::var("K2_CONTEXT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100u32);
    let ctx: Vec<u32> = (0..context).map(|i| 1000 + i).collect();
    if let Some(t) = std::env::var("K2_POSITIONS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
    {
        println!("t={t}: {:.1} ms", pass_ms(m, &ctx, t, 100));
        return;
    }
    if let Ok(shapes) = std::env::var("K2_SHAPES") {
        println!("| positions per row | ms, context {context} |");
        println!("|---|---|");
        for shape in shapes.split_whitespace() {
            let feeds: Vec<usize> = shape.split(',').map(|n| n.parse().unwrap()).collect();
            println!("| {shape} | {:.1} |", batched_pass_ms(m, &ctx, &feeds, 7));
        }
        return;
    }
    println!("| positions | prefetch on, ms | off, ms | off / on |");
    println!("|---|---|---|---|");
    for t in 1..=16usize {
        // Best of 5 each, alternating, so a slow spell of the machine falls on both.
        let (mut on, mut off) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            k2_kernels::set_weight_prefetch(true);
            on = on.min(pass_ms(m, &ctx, t, 1));
            k2_kernels::set_weight_prefetch(false);
            off = off.min(pass_ms(m, &ctx, t, 1));
        }
        k2_kernels::set_weight_prefetch(true);
        println!("| {t} | {on:.1} | {off:.1} | {:.2}x |", off / on);
    }
}

/// Mean milliseconds of `passes` passes over `t` new positions after `ctx` (each pass
/// rolled back before the next).
fn pass_ms(m: &Model, ctx: &[u32], t: usize, passes: usize) -> f64 {
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    m.forward(&mut cache, &[ctx], LogitsFor::Last).unwrap();
    let new: Vec<u32> = (0..t as u32).map(|i| 2000 + i).collect();
    let start = Instant::now();
    for _ in 0..passes {
        m.forward(&mut cache, &[&new], LogitsFor::All).unwrap();
        cache.truncate(0, ctx.len()).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e3 / passes as f64
}

/// Median milliseconds of `passes` passes of rows forked from `ctx`, row r feeding `feeds[r]`
/// positions (each pass rolled back before the next).
fn batched_pass_ms(m: &Model, ctx: &[u32], feeds: &[usize], passes: usize) -> f64 {
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    m.forward(&mut cache, &[ctx], LogitsFor::Last).unwrap();
    if feeds.len() > 1 {
        cache.fork(0, feeds.len() - 1).unwrap();
    }
    let new: Vec<Vec<u32>> = feeds
        .iter()
        .map(|&t| (0..t as u32).map(|i| 2000 + i).collect())
        .collect();
    let batch: Vec<&[u32]> = new.iter().map(Vec::as_slice).collect();
    let mut times: Vec<f64> = (0..passes)
        .map(|_| {
            let start = Instant::now();
            m.forward(&mut cache, &batch, LogitsFor::All).unwrap();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            for r in 0..feeds.len() {
                cache.truncate(r, ctx.len()).unwrap();
            }
            ms
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
