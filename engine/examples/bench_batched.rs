//! Batched best-of-3 against plain generation, on one prompt and the same token count:
//! (a) one generation of T tokens, (b) three sequential generations of T tokens, (c) one
//! batch of 3 rows of T tokens each. End tokens are masked out (`BatchTuning::ignore_eos`) so
//! every run decodes exactly T tokens per row. Prints wall times and the ratios (c)/(a)
//! (cost of best-of-3 over a single answer; the goal is <= 1.6 on CPU) and (b)/(c) (gain over
//! decoding the three one after another). Each case runs `--repeats` times; the fastest
//! counts (other processes only ever add time).
//!
//! `cargo run --release -p k2-engine --example bench_batched -- MODEL [--tokens 128]
//!  [--threads 2] [--repeats 3] [--greedy]`

use std::time::Instant;

use k2_engine::batched::{
    derive_seed, generate_batch_with_stats, BatchGeneration, BatchOptions, BatchTuning,
};
use k2_engine::chat::ChatMessage;
use k2_engine::generate::{CancelToken, GenerateOptions};
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::sample::SamplingParams;

const PROBLEM: &str = "Find all positive integers n such that n^2 + 2n + 12 is a perfect square. \
                       Reason step by step and put the final answer in \\boxed{}.";
const BASE_SEED: u64 = 42;

#[derive(Clone)]
struct Args {
    model: String,
    tokens: usize,
    threads: usize,
    repeats: usize,
    greedy: bool,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: bench_batched MODEL [--tokens N] [--threads N] [--repeats N] [--greedy]";
    let mut args = Args {
        model: String::new(),
        tokens: 128,
        threads: 2,
        repeats: 3,
        greedy: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number; {usage}"))
        };
        match arg.as_str() {
            "--tokens" => args.tokens = number("--tokens")?,
            "--threads" => args.threads = number("--threads")?.max(1),
            "--repeats" => args.repeats = number("--repeats")?.max(1),
            "--greedy" => args.greedy = true,
            _ if args.model.is_empty() && !arg.starts_with("--") => args.model = arg,
            _ => return Err(format!("unexpected argument {arg:?}; {usage}")),
        }
    }
    if args.model.is_empty() {
        return Err(usage.into());
    }
    Ok(args)
}

/// One timed run: `n` rows in one batch with base seed `seed`; returns its wall seconds.
fn run(
    lm: &LoadedModel,
    prompt: &[u32],
    n: usize,
    seed: u64,
    args: &Args,
) -> Result<(f64, BatchGeneration), Box<dyn std::error::Error>> {
    let sampling = if args.greedy {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed,
            ..Default::default()
        }
    };
    let options = BatchOptions {
        n,
        generate: GenerateOptions {
            sampling,
            max_tokens: args.tokens,
            stop: Vec::new(),
        },
    };
    let tuning = BatchTuning {
        ignore_eos: true,
        ..Default::default()
    };
    let started = Instant::now();
    let out = generate_batch_with_stats(
        &lm.model,
        &lm.tokenizer,
        prompt,
        &options,
        &tuning,
        &CancelToken::new(),
        &mut |_, _| {},
    )?;
    let seconds = started.elapsed().as_secs_f64();
    if out.rows.iter().any(|g| g.token_ids.len() != args.tokens) {
        return Err("a row ended before --tokens (context full?)".into());
    }
    Ok((seconds, out))
}

#[derive(Default)]
struct Best {
    wall: f64,
    decode: f64,
    forward: f64,
    sampling: f64,
}

impl Best {
    fn add(&mut self, wall: f64, out: &[&BatchGeneration]) {
        let sum = |f: fn(&BatchGeneration) -> f64| out.iter().map(|g| f(g)).sum::<f64>();
        if self.wall == 0.0 || wall < self.wall {
            *self = Best {
                wall,
                decode: sum(|g| g.stats.decode_seconds),
                forward: sum(|g| g.stats.forward_seconds),
                sampling: sum(|g| g.stats.sampling_seconds),
            };
        }
    }

    fn print(&self, label: &str, tokens: usize) {
        println!(
            "{label:<34} wall {:7.3} s  decode {:7.3} s ({:6.1} tok/s)  forward {:7.3} s  sampling+streaming {:6.3} s",
            self.wall,
            self.decode,
            tokens as f64 / self.decode,
            self.forward,
            self.sampling
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    k2_engine::set_cpu_threads(args.threads);
    let lm = load_model(args.model.as_ref(), &candle_core::Device::Cpu, &mut |_| {})?;
    let text = lm.template.render(&[ChatMessage::user(PROBLEM)], true)?;
    let prompt = lm.tokenizer.encode_prompt(&text, true)?;
    println!(
        "model {}  prompt {} tokens  T = {} tokens per row  threads {}  {}  best of {} runs",
        args.model,
        prompt.len(),
        args.tokens,
        args.threads,
        if args.greedy {
            "greedy"
        } else {
            "temperature 1.0, top-p 0.95"
        },
        args.repeats
    );

    // Warm-up: page the weights in and start the thread pools.
    let warm = Args {
        tokens: 8,
        ..args.clone()
    };
    run(&lm, &prompt, 3, BASE_SEED, &warm)?;

    let (mut single, mut sequential, mut batched) =
        (Best::default(), Best::default(), Best::default());
    for _ in 0..args.repeats {
        let (wall, out) = run(&lm, &prompt, 1, BASE_SEED, &args)?;
        single.add(wall, &[&out]);

        let started = Instant::now();
        let outs = (0..3)
            .map(|r| run(&lm, &prompt, 1, derive_seed(BASE_SEED, r), &args).map(|(_, o)| o))
            .collect::<Result<Vec<_>, _>>()?;
        sequential.add(
            started.elapsed().as_secs_f64(),
            &outs.iter().collect::<Vec<_>>(),
        );

        let (wall, out) = run(&lm, &prompt, 3, BASE_SEED, &args)?;
        batched.add(wall, &[&out]);
    }
    single.print("(a) single generation", args.tokens);
    sequential.print("(b) 3 sequential generations", 3 * args.tokens);
    batched.print("(c) batched best-of-3 (one batch)", 3 * args.tokens);
    println!(
        "(c)/(a) = {:.2} (wall), {:.2} (decode)   (b)/(c) = {:.2} (wall), {:.2} (decode)",
        batched.wall / single.wall,
        batched.decode / single.decode,
        sequential.wall / batched.wall,
        sequential.decode / batched.decode
    );
    Ok(())
}
