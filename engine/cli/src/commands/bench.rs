//! `k2 bench`: prefill and decode speed on a fixed prompt, as one JSON line, plus the memory
//! bandwidth measured in the same process, so decode can be read as a fraction of the ceiling
//! (every decoded token streams all weights once). `scripts/bench.sh` runs this beside
//! llama.cpp on the same file and prints the ratios.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use k2_engine::decode::sample::argmax;
use k2_engine::model::LogitsFor;
use serde_json::json;

use crate::load::{load, ModelArgs};
use crate::output::print_json_line;

/// Prose and mathematics repeated to make prompts of any length.
const BENCH_TEXT: &str = "A competition problem asks for the number of ordered pairs (a, b) of \
positive integers such that a + b = 1000 and neither a nor b has a zero digit. We count by \
cases on the number of digits, using complementary counting and the principle of \
inclusion-exclusion; the answer is then checked by a short program. ";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Runs after one warm-up; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use exactly these prompt token ids (a JSON array), e.g. to match another engine.
    #[arg(long)]
    pub prompt_ids: Option<PathBuf>,
    /// Skip measuring memory bandwidth.
    #[arg(long)]
    pub no_bandwidth: bool,
}

pub fn run(args: Args) -> Result<()> {
    let threads = args.threads.unwrap_or_else(k2_engine::available_cores);
    let loaded = load(&args.model, true)?;
    let prompt: Vec<u32> = match &args.prompt_ids {
        Some(path) => read_prompt_ids(path)?,
        None => {
            let text = BENCH_TEXT.repeat(args.prompt_tokens / 40 + 2);
            let mut ids = loaded.tokenizer.encode(&text, false)?;
            ids.truncate(args.prompt_tokens);
            ids
        }
    };
    let model = &loaded.model;
    let mut best_prefill = 0.0f64;
    let mut best_decode = 0.0f64;
    for run in 0..=args.repeats {
        let mut cache = model.new_cache(Some(prompt.len() + args.gen_tokens + 1));
        cache.add_row()?;
        let t0 = Instant::now();
        let logits = model.forward(&mut cache, &[&prompt], LogitsFor::Last)?;
        let mut next = argmax(&logits[0].squeeze(0)?.to_vec1::<f32>()?);
        let prefill = prompt.len() as f64 / t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for _ in 0..args.gen_tokens {
            let logits = model.forward(&mut cache, &[&[next]], LogitsFor::Last)?;
            next = argmax(&logits[0].squeeze(0)?.to_vec1::<f32>()?);
        }
        let decode = args.gen_tokens as f64 / t1.elapsed().as_secs_f64();
        if run > 0 {
            best_prefill = best_prefill.max(prefill);
            best_decode = best_decode.max(decode);
        }
    }
    let weight_bytes = loaded.info.size_bytes;
    let bandwidth = (!args.no_bandwidth).then(|| measure_read_bandwidth(threads));
    let ceiling = bandwidth.map(|bw| bw / weight_bytes as f64);
    print_json_line(&json!({
        "engine": "k2",
        "model": loaded.info.name,
        "threads": threads,
        "prompt_tokens": prompt.len(),
        "gen_tokens": args.gen_tokens,
        "prefill_tokens_per_s": best_prefill,
        "decode_tokens_per_s": best_decode,
        "weight_bytes": weight_bytes,
        "read_bandwidth_gb_s": bandwidth.map(|b| b / 1e9),
        "decode_ceiling_tokens_per_s": ceiling,
        "decode_fraction_of_ceiling": ceiling.map(|c| best_decode / c),
    }));
    Ok(())
}

/// A JSON array of ids, or an object with an `ids` array (scripts/llamacpp_bench.py's output).
fn read_prompt_ids(path: &std::path::Path) -> Result<Vec<u32>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let ids = value.get("ids").unwrap_or(&value);
    serde_json::from_value(ids.clone())
        .context("--prompt-ids must hold a JSON array of token ids (or {\"ids\": [...]})")
}

/// Bytes per second that `threads` threads read from buffers far larger than the caches.
/// Sums f32 values in 32 independent lanes so the loop compiles to wide vector loads and the
/// measurement is limited by memory, not by the adder chain.
fn measure_read_bandwidth(threads: usize) -> f64 {
    const FLOATS_PER_THREAD: usize = 64 << 20; // 256 MiB
    const LANES: usize = 32;
    let buffers: Vec<Vec<f32>> = (0..threads)
        .map(|i| vec![i as f32 + 1.0; FLOATS_PER_THREAD])
        .collect();
    let read = |b: &[f32]| {
        let mut acc = [0f32; LANES];
        for chunk in b.chunks_exact(LANES) {
            for (a, x) in acc.iter_mut().zip(chunk) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>()
    };
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let sums: f32 = std::thread::scope(|s| {
            let handles: Vec<_> = buffers.iter().map(|b| s.spawn(|| read(b))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(sums);
        let bytes = threads * FLOATS_PER_THREAD * std::mem::size_of::<f32>();
        best = best.max(bytes as f64 / t.elapsed().as_secs_f64());
    }
    best
}
