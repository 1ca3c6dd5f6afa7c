//! Time of one sample from a row's logits, for the settings the app and the server use:
//! temperature only over the whole vocabulary (the server's usual request), and temperature
//! 1.0 with top-p 0.95 (`k2 solve`'s best-of-N candidates).
//!
//! `cargo run --release -p k2-engine --example sampling_cost [MODEL [PROBLEMS.jsonl]]`: with a
//! model, over its real logits (the solver's prompt for the first problems, then its own
//! greedy text, so the distributions are those of a reasoning trace); without, over synthetic
//! logits. Prints milliseconds per sample on one thread.
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use k2_engine::chat::ChatMessage;
use k2_engine::decode::sample::{Sampler, SamplingParams};
use k2_engine::loader::load_model;

// The examples' shared helpers; this one needs only the greedy trace.
#[allow(dead_code)]
mod support;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = match args.first() {
        Some(model) => real_logits(model, args.get(1).map(String::as_str))?,
        None => vec![(0..151_936)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 10.0)
            .collect()],
    };
    for (name, temperature, top_p) in [
        ("temperature 0.7, whole vocabulary", 0.7, 1.0),
        ("temperature 1.0, top-p 0.95", 1.0, 0.95),
    ] {
        let mut sampler = Sampler::new(SamplingParams {
            temperature,
            top_p,
            top_k: 0,
            ..SamplingParams::default()
        });
        let reps = 400usize.div_ceil(rows.len());
        let started = Instant::now();
        let mut checksum = 0u64;
        for _ in 0..reps {
            for logits in &rows {
                checksum += u64::from(sampler.sample(logits));
            }
        }
        let each = started.elapsed().as_secs_f64() / (reps * rows.len()) as f64;
        println!(
            "{name}: {:.3} ms per sample over {} rows of logits (checksum {checksum})",
            each * 1e3,
            rows.len()
        );
    }
    Ok(())
}

/// The logits of 64 positions of a greedy reasoning trace of `model` (CPU).
fn real_logits(model: &str, problems: Option<&str>) -> Result<Vec<Vec<f32>>> {
    let path = k2_engine::models_dir::resolve_model(model)?;
    let loaded = load_model(&path, &Device::Cpu, &mut |_| {})?;
    let problem = match problems {
        Some(file) => {
            let line = std::fs::read_to_string(file)?
                .lines()
                .next()
                .context("an empty problems file")?
                .to_owned();
            let value: serde_json::Value = serde_json::from_str(&line)?;
            value["problem"].as_str().context("a problem")?.to_owned()
        }
        None => "Natalia sold clips to 48 of her friends in April, and then she sold half as many \
                 clips in May. How many clips did Natalia sell altogether in April and May?"
            .to_owned(),
    };
    let prompt = loaded.chat_prompt_ids(&[ChatMessage::user(&problem)])?;
    let (logits, _) = support::greedy(&loaded.model, &prompt, 63)?;
    Ok(logits)
}
