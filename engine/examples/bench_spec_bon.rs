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

use std::time::Instant;

use anyhow::{bail, Context, Result};
use k2_engine::decode::batched::{generate_batch_with_stats, BatchOptions, BatchTuning};
use k2_engine::decode::plain::{CancelToken, GenerateOptions, Generation};
use k2_engine::decode::sample::SamplingParams;
use k2_engine::decode::speculative::{generate_speculative, DraftSource, SpecStats, SpecTuning};
use k2_engine::device::{select_device, DeviceChoice};
use k2_engine::loader::{load_model, LoadedModel};
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
    Ok(())
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
