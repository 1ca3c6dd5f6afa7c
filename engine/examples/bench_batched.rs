//! Batched best-of-3 against plain generation, on one prompt and the same token count:
//! (a) one generation of T tokens, (b) three sequential generations of T tokens, (c) one
//! batch of 3 rows of T tokens each. End tokens are masked out (`BatchTuning::ignore_eos`) so
//! every run decodes exactly T tokens per row. Prints wall times and the ratios (c)/(a)
//! (cost of best-of-3 over a single answer; the goal is <= 1.6 on CPU) and (b)/(c) (gain over
//! decoding the three one after another).
//!
//! Case (d), only on request: a batch of 3 rows that end at different times (a short question,
//! end tokens allowed), run with finished rows dropped from the cache and with them sitting
//! later steps out; both must give the same tokens, and the times say which is faster.
//!
//! Case (e), only on request: forward passes alone at the prompt's length, to say where the
//! batch's extra time goes: 1 row x 1 token (plain decode), 1 row x 3 tokens (every matmul,
//! the output matrix included, sees 3 activation rows; one attention), 3 rows x 1 token
//! (batched decode: the same matmuls, 3 attentions).
//!
//! Cases alternate within each of `--repeats` rounds and the fastest round counts: other
//! processes on the machine only ever add time.
//!
//! `cargo run --release -p k2-engine --example bench_batched -- MODEL [--tokens 128]
//!  [--threads 2] [--repeats 3] [--greedy] [--cases abc]` (e.g. `--cases c` under
//! `perf record -g`, `--cases de` for the diagnostics).

use std::time::Instant;

use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::{
    derive_seed, generate_batch_with_stats, BatchGeneration, BatchOptions, BatchTuning,
};
use k2_engine::decode::plain::{CancelToken, GenerateOptions};
use k2_engine::decode::sample::SamplingParams;
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::model::LogitsFor;

type Error = Box<dyn std::error::Error>;

const PROBLEM: &str = "Find all positive integers n such that n^2 + 2n + 12 is a perfect square. \
                       Reason step by step and put the final answer in \\boxed{}.";
/// Case (d): sampled answers to this end after clearly different lengths.
const SHORT_QUESTION: &str = "Why is the sum of two odd numbers even?";
const BASE_SEED: u64 = 42;
const USAGE: &str =
    "usage: bench_batched MODEL [--tokens N] [--threads N] [--repeats N] [--greedy] [--cases abcde]";

#[derive(Clone)]
struct Args {
    model: String,
    tokens: usize,
    threads: usize,
    repeats: usize,
    greedy: bool,
    cases: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: String::new(),
        tokens: 128,
        threads: 2,
        repeats: 3,
        greedy: false,
        cases: "abc".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value; {USAGE}"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{v:?}: {USAGE}"));
        match arg.as_str() {
            "--tokens" => args.tokens = number(value("--tokens")?)?,
            "--threads" => args.threads = number(value("--threads")?)?.max(1),
            "--repeats" => args.repeats = number(value("--repeats")?)?.max(1),
            "--greedy" => args.greedy = true,
            "--cases" => args.cases = value("--cases")?,
            _ if args.model.is_empty() && !arg.starts_with("--") => args.model = arg,
            _ => return Err(format!("unexpected argument {arg:?}; {USAGE}")),
        }
    }
    if args.model.is_empty() || args.cases.chars().any(|c| !"abcde".contains(c)) {
        return Err(USAGE.into());
    }
    Ok(args)
}

/// One timed batch of `n` rows with base seed `seed`; returns its wall seconds and result.
fn run(
    lm: &LoadedModel,
    prompt: &[u32],
    n: usize,
    seed: u64,
    args: &Args,
    tuning: BatchTuning,
) -> Result<(f64, BatchGeneration), Error> {
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
            ..GenerateOptions::default()
        },
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
    if tuning.ignore_eos && out.rows.iter().any(|g| g.token_ids.len() != args.tokens) {
        return Err("a row ended before --tokens (context full?)".into());
    }
    Ok((seconds, out))
}

const FIXED_LENGTH: BatchTuning = BatchTuning {
    ignore_eos: true,
    drop_finished: true,
};

/// Case (e): seconds per forward pass (fastest of `passes`) for 1 row x 1 token, 1 row x 3
/// tokens and 3 rows x 1 token, every row at the prompt's length.
fn forward_only(lm: &LoadedModel, prompt: &[u32], passes: usize) -> Result<[f64; 3], Error> {
    let model = &lm.model;
    let mut cache = model.new_cache(None);
    cache.add_row()?;
    model.forward(&mut cache, &[prompt], LogitsFor::Last)?;
    cache.fork(0, 2)?;
    let len = prompt.len();
    let t = prompt[len - 1];
    let shapes: [[&[u32]; 3]; 3] = [[&[t], &[], &[]], [&[t, t, t], &[], &[]], [&[t], &[t], &[t]]];
    let mut best = [f64::INFINITY; 3];
    for _ in 0..passes {
        for (shape, best) in shapes.iter().zip(&mut best) {
            let started = Instant::now();
            // Logits for every new position: the output matrix sees the same 3 rows in both
            // 3-token shapes, which then differ only in attention.
            let out = model.forward(&mut cache, shape, LogitsFor::All)?;
            for logits in &out {
                logits.to_vec2::<f32>()?;
            }
            *best = best.min(started.elapsed().as_secs_f64());
            for row in 0..3 {
                cache.truncate(row, len)?;
            }
        }
    }
    Ok(best)
}

/// The fastest round of one case.
#[derive(Default)]
struct Best {
    wall: f64,
    decode: f64,
    forward: f64,
    sampling: f64,
}

impl Best {
    fn add(&mut self, wall: f64, runs: &[BatchGeneration]) {
        let sum = |f: fn(&BatchGeneration) -> f64| runs.iter().map(f).sum::<f64>();
        if self.wall == 0.0 || wall < self.wall {
            *self = Best {
                wall,
                decode: sum(|g| g.stats.decode_seconds),
                forward: sum(|g| g.stats.forward_seconds),
                sampling: sum(|g| g.stats.sampling_seconds),
            };
        }
    }

    /// `tokens`: generated in this case, for a rate; 0 when rows differ in length.
    fn print(&self, label: &str, tokens: usize) {
        if self.wall == 0.0 {
            return;
        }
        let rate = if tokens > 0 {
            format!(" ({:5.1} tok/s)", tokens as f64 / self.decode)
        } else {
            String::new()
        };
        println!(
            "{label:<36} wall {:7.3} s  decode {:7.3} s{rate}  forward {:7.3} s  \
             sampling+streaming {:6.3} s",
            self.wall, self.decode, self.forward, self.sampling
        );
    }
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    k2_engine::set_cpu_threads(args.threads);
    let lm = load_model(args.model.as_ref(), &candle_core::Device::Cpu, &mut |_| {})?;
    let chat = |question: &str| -> Result<Vec<u32>, Error> {
        let text = lm.template.render(&[ChatMessage::user(question)], true)?;
        Ok(lm.tokenizer.encode_prompt(&text, true)?)
    };
    let prompt = chat(PROBLEM)?;
    let short = chat(SHORT_QUESTION)?;
    println!(
        "model {}  prompt {} tokens  T = {} tokens per row  threads {}  {}  fastest of {} rounds",
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
    run(&lm, &prompt, 3, BASE_SEED, &warm, FIXED_LENGTH)?;

    let wanted = |case| args.cases.contains(case);
    let mut best: [Best; 5] = Default::default();
    // Token ids of the last (b) and (c) runs: row r of the batch must equal sequential run r.
    let (mut sequential_ids, mut batched_ids) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        if wanted('a') {
            let (wall, out) = run(&lm, &prompt, 1, BASE_SEED, &args, FIXED_LENGTH)?;
            best[0].add(wall, &[out]);
        }
        if wanted('b') {
            let started = Instant::now();
            let outs = (0..3)
                .map(|r| {
                    let seed = derive_seed(BASE_SEED, r);
                    run(&lm, &prompt, 1, seed, &args, FIXED_LENGTH).map(|(_, out)| out)
                })
                .collect::<Result<Vec<_>, _>>()?;
            best[1].add(started.elapsed().as_secs_f64(), &outs);
            sequential_ids = outs.iter().map(|o| o.rows[0].token_ids.clone()).collect();
        }
        if wanted('c') {
            let (wall, out) = run(&lm, &prompt, 3, BASE_SEED, &args, FIXED_LENGTH)?;
            batched_ids = out.rows.iter().map(|g| g.token_ids.clone()).collect();
            best[2].add(wall, &[out]);
        }
        if wanted('d') {
            let mut tokens = Vec::new();
            for (slot, drop_finished) in [(3, true), (4, false)] {
                let tuning = BatchTuning {
                    ignore_eos: false,
                    drop_finished,
                };
                let (wall, out) = run(&lm, &short, 3, BASE_SEED, &args, tuning)?;
                tokens.push(
                    out.rows
                        .iter()
                        .map(|g| g.token_ids.clone())
                        .collect::<Vec<_>>(),
                );
                best[slot].add(wall, &[out]);
            }
            if tokens[0] != tokens[1] {
                return Err("dropping finished rows changed the tokens".into());
            }
            let lengths: Vec<usize> = tokens[0].iter().map(Vec::len).collect();
            println!("(d) row lengths {lengths:?}");
        }
    }
    best[0].print("(a) single generation", args.tokens);
    best[1].print("(b) 3 sequential generations", 3 * args.tokens);
    best[2].print("(c) batched best-of-3 (one batch)", 3 * args.tokens);
    if wanted('b') && wanted('c') {
        let same = sequential_ids == batched_ids;
        println!("batched rows identical to the sequential runs with their seeds: {same}");
    }
    if wanted('a') && wanted('b') && wanted('c') {
        let [a, b, c] = [&best[0], &best[1], &best[2]];
        println!(
            "(c)/(a) = {:.2} (wall), {:.2} (decode)   (b)/(c) = {:.2} (wall), {:.2} (decode)",
            c.wall / a.wall,
            c.decode / a.decode,
            b.wall / c.wall,
            b.decode / c.decode
        );
    }
    if wanted('e') {
        let [one, three_tokens, three_rows] = forward_only(&lm, &prompt, 16 * args.repeats)?;
        println!(
            "(e) forward pass: 1 row x 1 token {:.1} ms, 1 row x 3 tokens {:.1} ms, \
             3 rows x 1 token {:.1} ms",
            one * 1e3,
            three_tokens * 1e3,
            three_rows * 1e3
        );
    }
    best[3].print("(d) finished rows dropped", 0);
    best[4].print("(d) finished rows sit out", 0);
    Ok(())
}
