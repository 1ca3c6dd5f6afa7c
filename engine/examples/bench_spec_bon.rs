//! Speculation inside best-of-N, as `k2 solve` decodes its candidates: for each problem the
//! solver's prompt (no plan), `-n` rows sampled together, decoded once plainly and once with
//! each drafter, back to back in this process (the order rotates from problem to problem, so
//! a slow spell of the machine falls on every decoder alike).
//!
//! Reports tokens per wall second of each decoder (prefill included, as a student waits for
//! it), the ratio to plain decoding, acceptance, tokens per target pass, and the pass costs
//! that decide drafting (the cost of a pass against the positions it feeds). Checks that every
//! row of every speculative run is token for token the plain row (same seeds): speculation's
//! fixed guesses are verified by sampling exactly as plain decoding does.
//!
//! `cargo run --release -p k2-engine --example bench_spec_bon -- MODEL --data FILE.jsonl
//!  [--problems 10] [--n 3] [--max-tokens 256] [--temperature 1.0] [--threads 2]
//!  [--decoders off,suffix,ngram] [--draft MODEL] [--device cpu|cuda]`
//!
//! MODEL and `--draft` are installed models' names or paths.
//!
//! `--ceiling` also bounds what model-free drafters (suffix, prompt lookup: fixed guesses,
//! each accepted with the target's probability of it) could gain: each plain row is fed back
//! through the target (teacher forcing), and at every generated position the most likely
//! token's probability under the sampling settings is what a perfect guesser would be
//! accepted with. Beside it, a cheap guesser of that token: the target's most likely token
//! after the same last 1-3 tokens wherever it was seen before. Printed: mean acceptance, and
//! expected tokens per row-pass drafting k tokens every pass, k = 0..=8.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use k2_engine::decode::batched::{generate_batch_with_stats, BatchOptions, BatchTuning};
use k2_engine::decode::plain::{CancelToken, GenerateOptions, Generation};
use k2_engine::decode::sample::{argmax, distribution, SamplingParams};
use k2_engine::decode::speculative::{generate_speculative, DraftSource, SpecStats, SpecTuning};
use k2_engine::device::{select_device, DeviceChoice};
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::model::{logits_to_host, LogitsFor};
use k2_engine::models_dir::resolve_model;

struct Args {
    model: String,
    data: String,
    problems: usize,
    n: usize,
    max_tokens: usize,
    temperature: f32,
    threads: usize,
    decoders: Vec<String>,
    draft: Option<String>,
    device: DeviceChoice,
    ceiling: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        model: String::new(),
        data: String::new(),
        problems: 10,
        n: 3,
        max_tokens: 256,
        temperature: 1.0,
        threads: 2,
        decoders: vec!["off".into(), "suffix".into()],
        draft: None,
        device: DeviceChoice::Cpu,
        ceiling: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--data" => args.data = value()?,
            "--problems" => args.problems = value()?.parse()?,
            "--n" => args.n = value()?.parse()?,
            "--max-tokens" => args.max_tokens = value()?.parse()?,
            "--temperature" => args.temperature = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--decoders" => args.decoders = value()?.split(',').map(str::to_owned).collect(),
            "--draft" => args.draft = Some(value()?),
            "--device" => args.device = value()?.parse()?,
            "--ceiling" => args.ceiling = true,
            _ if args.model.is_empty() && !a.starts_with('-') => args.model = a,
            _ => bail!("unknown argument {a}"),
        }
    }
    if args.model.is_empty() || args.data.is_empty() {
        bail!("usage: bench_spec_bon MODEL --data FILE.jsonl [options: see the source]");
    }
    if args.decoders.first().map(String::as_str) != Some("off") {
        bail!("--decoders must start with off: the baseline every row is checked against");
    }
    Ok(args)
}

/// One decoder's totals over all problems.
#[derive(Default)]
struct Totals {
    tokens: usize,
    wall: f64,
    /// Decoding alone (after the prompt's prefill).
    decode: f64,
    spec: SpecStats,
    /// Passes each row took part in, summed over rows.
    row_passes: usize,
    identical_rows: usize,
    rows: usize,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let device = select_device(args.device)?;
    let load = |spec: &str| -> Result<LoadedModel> {
        Ok(load_model(
            &resolve_model(spec)?,
            &device.device,
            &mut |_| {},
        )?)
    };
    let target = load(&args.model)?;
    // With the copy bandwidth measured beside it (scripts/gpu/spec.sh), the memory floor of a
    // decoding step.
    println!(
        "target weights read per decoding step: {:.3} GB",
        target.model.decode_weight_bytes() as f64 / 1e9
    );
    let mut draft = args.draft.as_deref().map(load).transpose()?;
    if let Some(d) = draft.as_mut() {
        // As `k2 --draft` loads it: the draft predicts the first 65536 ids only.
        d.model.limit_output_vocabulary(65536);
    }
    // After loading, which sets every core.
    k2_engine::set_cpu_threads(args.threads);
    let problems: Vec<String> = std::fs::read_to_string(&args.data)?
        .lines()
        .take(args.problems)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["problem"].as_str().context("a problem")?.to_owned())
        })
        .collect::<Result<_>>()?;
    let sampling = if args.temperature == 0.0 {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: args.temperature,
            top_p: 0.95,
            ..SamplingParams::default()
        }
    };
    // Untimed warm-up of every decoder: on CUDA the first passes of each shape load kernels
    // and capture graphs (22 s of the first GPU run's baseline went there).
    if let Some(problem) = problems.first() {
        let ids = target.chat_prompt_ids(&k2_scaffold::prompts::solver_messages(problem, None))?;
        let warm = BatchOptions {
            n: args.n,
            generate: GenerateOptions {
                sampling: sampling.clone(),
                max_tokens: 32,
                ..GenerateOptions::default()
            },
        };
        for decoder in &args.decoders {
            decode(&target, draft.as_ref(), decoder, &ids, &warm)?;
        }
        eprintln!("warmed up");
    }
    let mut totals: Vec<Totals> = args.decoders.iter().map(|_| Totals::default()).collect();
    let mut ceiling = Ceiling::default();
    for (i, problem) in problems.iter().enumerate() {
        let ids = target.chat_prompt_ids(&k2_scaffold::prompts::solver_messages(problem, None))?;
        let batch = BatchOptions {
            n: args.n,
            generate: GenerateOptions {
                sampling: SamplingParams {
                    seed: 1000 + i as u64,
                    ..sampling.clone()
                },
                max_tokens: args.max_tokens,
                ..GenerateOptions::default()
            },
        };
        let mut plain_rows: Option<Vec<Generation>> = None;
        let mut order: Vec<usize> = (0..args.decoders.len()).collect();
        order.rotate_left(i % args.decoders.len());
        // The baseline runs first whatever the order, for the identity check; the others'
        // order still rotates.
        order.retain(|&d| d != 0);
        order.insert(0, 0);
        let mut results: Vec<Option<(Decoded, f64)>> = args.decoders.iter().map(|_| None).collect();
        for &d in &order {
            let started = Instant::now();
            let decoded = decode(&target, draft.as_ref(), &args.decoders[d], &ids, &batch)?;
            results[d] = Some((decoded, started.elapsed().as_secs_f64()));
        }
        for (d, result) in results.into_iter().enumerate() {
            let (
                Decoded {
                    rows,
                    stats,
                    decode_seconds,
                },
                wall,
            ) = result.expect("every decoder ran");
            let t = &mut totals[d];
            t.decode += decode_seconds;
            t.tokens += rows.iter().map(|g| g.stats.generated_tokens).sum::<usize>();
            t.wall += wall;
            t.spec.drafted_tokens += stats.drafted_tokens;
            t.spec.accepted_draft_tokens += stats.accepted_draft_tokens;
            t.row_passes += stats.target_passes;
            let plain = plain_rows.get_or_insert_with(|| rows.clone());
            t.rows += rows.len();
            t.identical_rows += rows
                .iter()
                .zip(plain.iter())
                .filter(|(a, b)| a.token_ids == b.token_ids)
                .count();
        }
        if args.ceiling {
            for row in plain_rows.as_deref().unwrap_or_default() {
                ceiling.add_row(&target, &ids, &row.token_ids, &batch.generate.sampling)?;
            }
        }
        eprintln!("problem {}/{} done", i + 1, problems.len());
    }
    println!(
        "{} problems, best-of-{}, temperature {}, up to {} tokens, {} ({} threads): {}",
        problems.len(),
        args.n,
        args.temperature,
        args.max_tokens,
        device.name,
        args.threads,
        args.model
    );
    println!("| decoder | tokens | wall s | tok/s | vs off | decode tok/s | acceptance | tokens per row-pass | rows identical to off |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let base = totals[0].tokens as f64 / totals[0].wall;
    for (name, t) in args.decoders.iter().zip(&totals) {
        let rate = t.tokens as f64 / t.wall;
        let acceptance = t.spec.acceptance_rate().map_or("-".to_owned(), |a| {
            format!("{:.0}% of {}", a * 100.0, t.spec.drafted_tokens)
        });
        let per_pass = if t.row_passes > 0 {
            format!("{:.2}", t.tokens as f64 / t.row_passes as f64)
        } else {
            "1.00".to_owned()
        };
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.2}x | {:.1} | {acceptance} | {per_pass} | {}/{} |",
            t.tokens,
            t.wall,
            rate,
            rate / base,
            t.tokens as f64 / t.decode,
            t.identical_rows,
            t.rows
        );
    }
    if args.ceiling {
        ceiling.print();
    }
    Ok(())
}

/// Longest draft the ceiling is computed for.
const CEILING_MAX_DRAFT: usize = 8;
/// The argmax memory looks up the last 1 to this many tokens (the longest it has seen).
const MEMORY_CONTEXT: usize = 3;

/// What model-free drafters could reach on the plain rows (`--ceiling`): a perfect guesser
/// (the target's most likely token), and a memory of the target's most likely token after
/// the last 1-3 tokens, learned from every position verified so far (all rows, all problems;
/// rows fed one after another, so slightly optimistic for a batch's rows).
#[derive(Default)]
struct Ceiling {
    positions: usize,
    perfect: Acceptances,
    memory: Acceptances,
    /// Last 1..=MEMORY_CONTEXT tokens -> the target's most likely next token there.
    remembered: HashMap<Vec<u32>, Remembered>,
    /// The memory's guesses by their evidence, (context tokens, streak up to
    /// [`STREAK_CAP`]): (guesses, sum of their chances).
    by_evidence: BTreeMap<(usize, usize), (usize, f64)>,
}

/// The argmax memory's entry for one context.
#[derive(Clone, Copy)]
struct Remembered {
    token: u32,
    /// How many times in a row this context was followed by this most likely token.
    streak: usize,
}

/// Streaks this long and longer are reported together.
const STREAK_CAP: usize = 4;

/// Per-position chances that a drafter's guess is accepted, summed into expected tokens.
#[derive(Default)]
struct Acceptances {
    sum: f64,
    /// Per draft length k, over pass starts: expected tokens of a pass drafting k.
    sum_expected: [f64; CEILING_MAX_DRAFT + 1],
}

impl Acceptances {
    /// Adds one row's chances (`accept[j]`: its guess at position j is the target's token).
    fn add(&mut self, accept: &[f64]) {
        self.sum += accept.iter().sum::<f64>();
        for start in 0..accept.len() {
            // A pass from `start`: its drafts stand while each is accepted, then the target's
            // own token; drafts past the row's end stand for nothing.
            let mut run = 1.0;
            let mut expected = 1.0;
            self.sum_expected[0] += expected;
            for k in 1..=CEILING_MAX_DRAFT {
                run *= accept.get(start + k - 1).copied().unwrap_or(0.0);
                expected += run;
                self.sum_expected[k] += expected;
            }
        }
    }
}

impl Ceiling {
    /// Teacher-forces `prompt` + `output` through the target and adds each generated
    /// position's chances under `sampling`.
    fn add_row(
        &mut self,
        target: &LoadedModel,
        prompt: &[u32],
        output: &[u32],
        sampling: &SamplingParams,
    ) -> Result<()> {
        if output.is_empty() {
            return Ok(());
        }
        let fed: Vec<u32> = prompt.iter().chain(output).copied().collect();
        let mut cache = target.model.new_cache(None);
        cache.add_row()?;
        let logits = logits_to_host(&target.model.forward(&mut cache, &[&fed], LogitsFor::All)?)?;
        let vocab = target.model.config().vocab_size;
        let (mut perfect, mut memory) = (Vec::new(), Vec::new());
        // The logits at position j predict token j + 1: the output's tokens are predicted from
        // the prompt's last position on.
        for (j, l) in logits[0]
            .chunks(vocab)
            .skip(prompt.len() - 1)
            .take(output.len())
            .enumerate()
        {
            let d = distribution(sampling, l);
            let top = argmax(l);
            perfect.push(f64::from(d.prob(top)));
            let context = &fed[..prompt.len() + j];
            let lengths = 1..=MEMORY_CONTEXT.min(context.len());
            let guess = lengths.clone().rev().find_map(|n| {
                let m = self.remembered.get(&context[context.len() - n..])?;
                Some((n, *m))
            });
            let chance = guess.map_or(0.0, |(_, m)| f64::from(d.prob(m.token)));
            if let Some((n, m)) = guess {
                let cell = self
                    .by_evidence
                    .entry((n, m.streak.min(STREAK_CAP)))
                    .or_default();
                cell.0 += 1;
                cell.1 += chance;
            }
            memory.push(chance);
            for n in lengths {
                let m = self
                    .remembered
                    .entry(context[context.len() - n..].to_vec())
                    .or_insert(Remembered {
                        token: top,
                        streak: 0,
                    });
                *m = Remembered {
                    token: top,
                    streak: if m.token == top { m.streak + 1 } else { 1 },
                };
            }
        }
        self.positions += output.len();
        self.perfect.add(&perfect);
        self.memory.add(&memory);
        Ok(())
    }

    fn print(&self) {
        let n = self.positions.max(1) as f64;
        let memory_guesses: usize = self.by_evidence.values().map(|(guesses, _)| guesses).sum();
        println!(
            "model-free drafters over {} plain positions: a perfect guess is accepted with \
             probability {:.3} on average; the argmax memory guesses at {} of them, accepted \
             with {:.3} on average where it does",
            self.positions,
            self.perfect.sum / n,
            memory_guesses,
            self.memory.sum / memory_guesses.max(1) as f64
        );
        println!(
            "| drafts per pass | expected tokens per row-pass, perfect guesses | argmax memory |"
        );
        println!("|---|---|---|");
        for k in 0..=CEILING_MAX_DRAFT {
            println!(
                "| {k} | {:.2} | {:.2} |",
                self.perfect.sum_expected[k] / n,
                self.memory.sum_expected[k] / n
            );
        }
        println!("| the memory's context, tokens | same most likely token the last times seen | guesses | mean acceptance |");
        println!("|---|---|---|---|");
        for ((context, streak), (guesses, sum)) in &self.by_evidence {
            let times = if *streak == STREAK_CAP {
                format!("{STREAK_CAP}+")
            } else {
                streak.to_string()
            };
            println!(
                "| {context} | {times} | {guesses} | {:.3} |",
                sum / *guesses as f64
            );
        }
    }
}

/// One decoder's run of one problem; `stats.target_passes` counts row-passes.
struct Decoded {
    rows: Vec<Generation>,
    stats: SpecStats,
    decode_seconds: f64,
}

/// Decodes the batch with `decoder` (off, suffix, ngram or draft).
fn decode(
    target: &LoadedModel,
    draft: Option<&LoadedModel>,
    decoder: &str,
    ids: &[u32],
    batch: &BatchOptions,
) -> Result<Decoded> {
    let cancel = CancelToken::new();
    let source = match decoder {
        "off" => {
            let generation = generate_batch_with_stats(
                &target.model,
                &target.tokenizer,
                ids,
                batch,
                &BatchTuning::default(),
                &cancel,
                &mut |_, _| {},
            )?;
            let s = &generation.stats;
            eprintln!(
                "  off: {} passes, forward {:.2} s, sampling {:.2} s of {:.2} s decoding",
                s.decode_passes, s.forward_seconds, s.sampling_seconds, s.decode_seconds
            );
            return Ok(Decoded {
                decode_seconds: s.decode_seconds,
                rows: generation.rows,
                stats: SpecStats::default(),
            });
        }
        "suffix" => DraftSource::Suffix,
        "ngram" => DraftSource::Ngram,
        "draft" => DraftSource::Model(&draft.context("--draft MODEL for the draft decoder")?.model),
        other => bail!("unknown decoder {other}"),
    };
    let (generation, stats) = generate_speculative(
        &target.model,
        &target.tokenizer,
        ids,
        batch,
        source,
        &SpecTuning::default(),
        &cancel,
        &mut |_, _| {},
    )?;
    eprintln!(
        "  {decoder}: {} passes over {} positions, passes {:.2} s of {:.2} s decoding",
        stats.verify_passes,
        stats.verified_positions,
        stats.verify_seconds,
        generation.stats.decode_seconds
    );
    Ok(Decoded {
        decode_seconds: generation.stats.decode_seconds,
        rows: generation.rows,
        stats,
    })
}
