//! Decoding rows together the way the serving scheduler does, against each row alone: the
//! probe for batched decoding on CUDA (`k2 eval --jobs 24` degenerated on an H100, see
//! BENCHMARKS.md, "Evaluation on the GPU").
//!
//! Every row is teacher-forced: it feeds its prompt, then a fixed continuation, so every
//! step of every row compares like with like (no sampled token can drift). Rows join the
//! batch at their own step (a prefill span among decoding rows, several prompts in one step)
//! and leave when their continuation is fed (the cache drops them), as under the scheduler.
//! Each row's logits after every token are compared with the same row decoded alone.
//!
//! `batching_probe [--model FILE.gguf --data FILE.jsonl] [--rows N] [--cpu] [--out FILE]`:
//! with a real model, prompts are the problems of `--data` in the model's chat template and
//! continuations are the model's own greedy text (decoded alone); without one, a synthetic
//! model in Qwen2.5-Coder-1.5B's geometry and Q4_K_M storage, fed deterministic tokens.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use k2_engine::model::{
    logits_to_host, synthetic_model, LogitsFor, Model, SyntheticSpec, WeightFormat,
};
use serde_json::{json, Value};

// Shares the helpers of device_bench and hybrid_check, not all of which it uses.
#[allow(dead_code)]
mod support;
use support::{argmax, greedy, rel_err, teacher_forced};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let device = if args.iter().any(|a| a == "--cpu") {
        Device::Cpu
    } else {
        k2_engine::device::select_device(k2_engine::device::DeviceChoice::Cuda)?.device
    };
    let rows = flag("--rows").map_or(Ok(24), |s| s.parse())?;
    let forced: Option<usize> = flag("--forced").map(|s| s.parse()).transpose()?;
    let filler = flag("--filler").map_or(Ok(0), |s| s.parse())?;
    if args.iter().any(|a| a == "--products") {
        let model = flag("--model").context("--products needs --model FILE.gguf")?;
        return products(Path::new(&model), &device);
    }
    let (model, mut workload) = match flag("--model") {
        Some(path) => {
            let data = flag("--data").context("--model needs --data FILE.jsonl")?;
            real_workload(Path::new(&path), Path::new(&data), rows, forced, &device)?
        }
        None => synthetic_workload(rows, forced, &device)?,
    };
    // Rows decoded alongside but not compared (random tokens): a crowded batch.
    let vocab = model.config().vocab_size;
    workload.filler = (0..filler)
        .map(|i| Row {
            prompt: tokens(150 + (i * 41) % 150, vocab, 7000 + i as u64),
            forced: tokens(forced.unwrap_or(300), vocab, 8000 + i as u64),
            join: 0,
            decode_from: 0,
            copies: 1,
        })
        .collect();
    let mut report = Vec::new();
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "schedule", "graphs", "background", "worst err", "median err", "first >1e-2", "argmax"
    );
    let backgrounds: &[bool] = if args.iter().any(|a| a == "--background") {
        &[false, true]
    } else {
        &[false]
    };
    // `--graphs off|on` runs one of the two (default both).
    let graph_modes: &[bool] = match flag("--graphs").as_deref() {
        Some("off") => &[false],
        Some("on") => &[true],
        _ => &[false, true],
    };
    // `--schedules one,all,staggered,apart,forked` picks schedules (default all of them).
    let schedules: Vec<Schedule> = match flag("--schedules") {
        None => Schedule::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|key| Schedule::ALL.into_iter().find(|s| s.key() == key))
            .collect::<Option<_>>()
            .context("--schedules takes one, all, staggered, apart, forked")?,
    };
    let cases = graph_modes
        .iter()
        .copied()
        .flat_map(|graphs| backgrounds.iter().map(move |&b| (graphs, b)));
    for (graphs, background) in cases {
        model.set_cuda_graphs(graphs);
        // Another thread decoding on the same model meanwhile, as a second scheduler (the
        // planner's) does during an evaluation: its own cache, rows and host copies.
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            let other = background.then(|| {
                // Its cache counts it among the threads sharing the GPU, as a scheduler's does.
                scope.spawn(|| busy_elsewhere(&model, &stop))
            });
            let result = run_schedules(
                &model,
                &workload,
                &schedules,
                graphs,
                background,
                &mut report,
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(other) = other {
                let steps = other.join().expect("background thread")?;
                println!("  (the background thread ran {steps} steps)");
            }
            result
        })?;
    }
    if let Some(out) = flag("--out") {
        let report: Value = json!({ "model": workload.name, "results": report });
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Decodes 4 rows of other prompts on its own cache until `stop`, growing, trimming and
/// refilling its cache as a scheduler does. Returns the steps run.
fn busy_elsewhere(model: &Model, stop: &std::sync::atomic::AtomicBool) -> Result<usize> {
    let vocab = model.config().vocab_size;
    let mut steps = 0;
    for round in 0u64.. {
        let mut cache = model.new_cache(Some(2048));
        let prompts: Vec<Vec<u32>> = (0..4)
            .map(|r| tokens(150 + 40 * r as usize, vocab, 9000 + round * 4 + r))
            .collect();
        for _ in 0..4 {
            cache.add_row()?;
        }
        let batch: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        logits_to_host(&model.forward(&mut cache, &batch, LogitsFor::Last)?)?;
        let mut rows = 4;
        for step in 0..400u64 {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(steps);
            }
            let next = tokens(rows, vocab, round * 1000 + step);
            let batch: Vec<&[u32]> = next.iter().map(std::slice::from_ref).collect();
            logits_to_host(&model.forward(&mut cache, &batch, LogitsFor::Last)?)?;
            steps += 1;
            if step % 100 == 99 && rows > 1 {
                rows -= 1;
                cache.select(&(0..rows).collect::<Vec<_>>());
            }
        }
    }
    Ok(steps)
}

fn run_schedules(
    model: &Model,
    workload: &Workload,
    schedules: &[Schedule],
    graphs: bool,
    background: bool,
    report: &mut Vec<Value>,
) -> Result<()> {
    for &schedule in schedules {
        let mut rows = schedule.apply(&workload.rows);
        let compared = rows.len();
        if !matches!(schedule, Schedule::OneRow) {
            rows.extend(workload.filler.iter().cloned());
        }
        let together = decode_together(model, &rows)?;
        let verdict = compare(&together, &workload.alone, compared);
        println!(
            "{:<34} {:>6} {:>10} {:>10.2e} {:>10.2e} {:>12} {:>5}/{:<5}",
            schedule.name(),
            graphs,
            background,
            verdict.worst,
            verdict.median,
            verdict
                .first_bad
                .map_or("-".into(), |(row, i)| format!("r{row}@{i}")),
            verdict.same_argmax,
            verdict.positions
        );
        report.push(json!({
            "schedule": schedule.name(), "graphs": graphs, "background": background,
            "worst_rel_err": verdict.worst, "median_rel_err": verdict.median,
            "first_bad": verdict.first_bad, "argmax_agree": verdict.same_argmax,
            "positions": verdict.positions, "per_row_worst": verdict.per_row_worst,
        }));
    }
    Ok(())
}

/// A row's prompt, its forced continuation, the step it joins at (its prompt is fed whole
/// then) and the first step it may feed its continuation at.
#[derive(Clone)]
struct Row {
    prompt: Vec<u32>,
    forced: Vec<u32>,
    join: usize,
    decode_from: usize,
    /// Cache rows decoding this prompt: more than one are forked after its prefill.
    copies: usize,
}

struct Workload {
    name: String,
    rows: Vec<Row>,
    /// Rows that only fill the batch (every schedule but one row adds them at step 0).
    filler: Vec<Row>,
    /// Each row decoded alone: logits after the prompt and after each forced token.
    alone: Vec<Vec<Vec<f32>>>,
}

/// How rows join: the shapes the scheduler produces.
#[derive(Clone, Copy)]
enum Schedule {
    /// The first row only, through the batching loop: must equal alone exactly.
    OneRow,
    /// Every prompt prefilled in one step, then all decode (an evaluation's first wave).
    AllAtOnce,
    /// A third at once, then one row joining every 5 steps (prefill among decoding rows).
    Staggered,
    /// One prompt per step with nothing else in the step, then all decode together:
    /// batched decoding without any batched prefill.
    PrefillApart,
    /// A third of the prompts in one step, each forked into 3 rows after its prefill
    /// (best-of-3 under the scheduler).
    Forked,
}

impl Schedule {
    const ALL: [Schedule; 5] = [
        Schedule::OneRow,
        Schedule::AllAtOnce,
        Schedule::Staggered,
        Schedule::PrefillApart,
        Schedule::Forked,
    ];

    /// The schedule's name in `--schedules`.
    fn key(self) -> &'static str {
        match self {
            Schedule::OneRow => "one",
            Schedule::AllAtOnce => "all",
            Schedule::Staggered => "staggered",
            Schedule::PrefillApart => "apart",
            Schedule::Forked => "forked",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Schedule::OneRow => "one row",
            Schedule::AllAtOnce => "all prompts in one step",
            Schedule::Staggered => "a third at once, then every 5",
            Schedule::PrefillApart => "prompts apart, then decode together",
            Schedule::Forked => "a third in one step, forked into 3",
        }
    }

    fn apply(self, rows: &[Row]) -> Vec<Row> {
        let third = rows.len().div_ceil(3);
        let count = match self {
            Schedule::OneRow => 1,
            Schedule::Forked => third,
            _ => rows.len(),
        };
        rows.iter()
            .enumerate()
            .take(count)
            .map(|(i, r)| {
                let (join, decode_from) = match self {
                    Schedule::OneRow | Schedule::AllAtOnce | Schedule::Forked => (0, 0),
                    Schedule::Staggered => (i.saturating_sub(third - 1) * 5, 0),
                    Schedule::PrefillApart => (i, rows.len()),
                };
                Row {
                    join,
                    decode_from,
                    copies: if matches!(self, Schedule::Forked) {
                        3
                    } else {
                        1
                    },
                    ..r.clone()
                }
            })
            .collect()
    }
}

/// Deterministic token ids below `vocab`.
fn tokens(count: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect()
}

fn synthetic_workload(
    count: usize,
    forced: Option<usize>,
    device: &Device,
) -> Result<(Model, Workload)> {
    let config = support::qwen25_15b(28);
    let vocab = config.vocab_size;
    let spec = SyntheticSpec {
        config,
        format: WeightFormat::Q4KM,
        tied_output: true,
        seed: 5,
        dense_reference: false,
    };
    let model = synthetic_model(&spec, device)?;
    // Prompts of 100-300 tokens and continuations of 200-450: rows leave at different
    // steps and the cache grows past 256 and 512 positions on the way.
    let rows: Vec<Row> = (0..count)
        .map(|i| Row {
            prompt: tokens(100 + (i * 37) % 200, vocab, 100 + i as u64),
            forced: tokens(
                forced.unwrap_or(200 + (i * 53) % 250),
                vocab,
                500 + i as u64,
            ),
            join: 0,
            decode_from: 0,
            copies: 1,
        })
        .collect();
    let alone = rows
        .iter()
        .map(|r| teacher_forced(&model, &r.prompt, &r.forced))
        .collect::<Result<_>>()?;
    let name = "synthetic qwen2.5-1.5b geometry, q4_k_m".to_string();
    Ok((
        model,
        Workload {
            name,
            rows,
            filler: Vec::new(),
            alone,
        },
    ))
}

fn real_workload(
    path: &Path,
    data: &Path,
    count: usize,
    forced: Option<usize>,
    device: &Device,
) -> Result<(Model, Workload)> {
    use k2_engine::chat::ChatMessage;
    let loaded = k2_engine::loader::load_model(path, device, &mut |_| {})?;
    let text = std::fs::read_to_string(data)?;
    let mut rows = Vec::new();
    let mut alone = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(count) {
        let problem: Value = serde_json::from_str(line)?;
        let problem = problem["problem"]
            .as_str()
            .context("a line without problem")?;
        let prompt = loaded.chat_prompt_ids(&[ChatMessage::user(problem)])?;
        let steps = forced.unwrap_or(200 + (rows.len() * 53) % 250);
        let (logits, forced) = greedy(&loaded.model, &prompt, steps)?;
        rows.push(Row {
            prompt,
            forced,
            join: 0,
            decode_from: 0,
            copies: 1,
        });
        alone.push(logits);
    }
    let name = path.display().to_string();
    Ok((
        loaded.model,
        Workload {
            name,
            rows,
            filler: Vec::new(),
            alone,
        },
    ))
}

/// Every row's logits after its prompt and after each forced token (one trace per cache row,
/// a forked row's copies each their own), decoding all rows in one cache: a row is added at
/// its join step and fed its whole prompt in that step, then (after its `copies - 1` copies
/// are forked from it, as best-of-N does) one forced token per step; once its last token is
/// fed it leaves the cache.
fn decode_together(model: &Model, rows: &[Row]) -> Result<Vec<(usize, Vec<Vec<f32>>)>> {
    #[derive(Clone, Copy)]
    struct Slot {
        row: usize,
        trace: usize,
        fed: usize,
        prefilled: bool,
    }
    // Sized as the scheduler's: up to the context, grown in steps as rows lengthen.
    let mut cache = model.new_cache(None);
    let mut slots: Vec<Slot> = Vec::new();
    let mut traces: Vec<(usize, Vec<Vec<f32>>)> = Vec::new();
    let last_join = rows.iter().map(|r| r.join).max().unwrap_or(0);
    for step in 0.. {
        for row in (0..rows.len()).filter(|&i| rows[i].join == step) {
            cache.add_row()?;
            slots.push(Slot {
                row,
                trace: traces.len(),
                fed: 0,
                prefilled: false,
            });
            traces.push((row, Vec::new()));
        }
        if slots.is_empty() {
            if step > last_join {
                break;
            }
            continue;
        }
        let inputs: Vec<Vec<u32>> = slots
            .iter()
            .map(|s| {
                let r = &rows[s.row];
                match (s.prefilled, step >= r.decode_from) {
                    (false, _) => r.prompt.clone(),
                    (true, true) => vec![r.forced[s.fed]],
                    (true, false) => Vec::new(),
                }
            })
            .collect();
        let batch: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        let logits = logits_to_host(&model.forward(&mut cache, &batch, LogitsFor::Last)?)?;
        let mut forks = Vec::new();
        for (i, (slot, l)) in slots.iter_mut().zip(logits).enumerate() {
            if l.is_empty() {
                continue;
            }
            if slot.prefilled {
                slot.fed += 1;
            } else {
                slot.prefilled = true;
                forks.push((i, l.clone()));
            }
            traces[slot.trace].1.push(l);
        }
        for (i, prefill_logits) in forks {
            let copies = rows[slots[i].row].copies;
            if copies > 1 {
                cache.fork(i, copies - 1)?;
            }
            for _ in 1..copies {
                slots.push(Slot {
                    trace: traces.len(),
                    ..slots[i]
                });
                traces.push((slots[i].row, vec![prefill_logits.clone()]));
            }
        }
        let keep: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].fed < rows[slots[i].row].forced.len())
            .collect();
        if keep.len() != slots.len() {
            cache.select(&keep);
            slots = keep.iter().map(|&i| slots[i]).collect();
        }
    }
    Ok(traces)
}

struct Verdict {
    worst: f64,
    median: f64,
    /// The first (row, position) whose logits are more than 1% off, if any.
    first_bad: Option<(usize, usize)>,
    same_argmax: usize,
    positions: usize,
    per_row_worst: Vec<f64>,
}

/// Compares the traces of the first `compared` rows (the rest filled the batch) with alone.
fn compare(traces: &[(usize, Vec<Vec<f32>>)], alone: &[Vec<Vec<f32>>], compared: usize) -> Verdict {
    let mut errors = Vec::new();
    let mut per_row_worst = Vec::new();
    let mut first_bad: Option<(usize, usize)> = None;
    let mut same_argmax = 0;
    for (row, trace) in traces.iter().filter(|(row, _)| *row < compared) {
        let mut worst = 0f64;
        for (i, (a, b)) in trace.iter().zip(&alone[*row]).enumerate() {
            let e = rel_err(a, b);
            worst = worst.max(e);
            errors.push(e);
            if e > 1e-2 && first_bad.is_none_or(|(_, j)| i < j) {
                first_bad = Some((*row, i));
            }
            same_argmax += usize::from(argmax(a) == argmax(b));
        }
        per_row_worst.push(worst);
    }
    errors.sort_by(f64::total_cmp);
    Verdict {
        worst: errors.last().copied().unwrap_or(0.0),
        median: errors.get(errors.len() / 2).copied().unwrap_or(0.0),
        first_bad,
        same_argmax,
        positions: errors.len(),
        per_row_worst,
    }
}

/// Candle's quantized products on the GPU for every batch size the scheduler produces, each
/// against the same weights dequantized to f32 and multiplied by cuBLAS: a wrong tile or
/// launch for some row count shows as an error far above 8-bit rounding (about 1e-2).
fn products(path: &Path, device: &Device) -> Result<()> {
    use candle_core::quantized::{gguf_file, QMatMul};
    use candle_core::{DType, Module, Tensor};
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut names: Vec<&String> = content
        .tensor_infos
        .keys()
        .filter(|n| n.starts_with("blk.0.") && n.ends_with(".weight") && !n.contains("norm"))
        .collect();
    names.sort();
    names.push(
        content
            .tensor_infos
            .keys()
            .find(|n| n.as_str() == "token_embd.weight")
            .context("no token_embd.weight")?,
    );
    let sizes: Vec<usize> = (1..=16)
        .chain([
            20, 24, 32, 40, 48, 56, 63, 64, 65, 72, 80, 96, 112, 127, 128, 129, 200, 256, 512,
            1024, 2048,
        ])
        .collect();
    println!(
        "{:<26} {:<6} {:>7}  worst relative error by rows",
        "tensor", "dtype", "shape"
    );
    for name in names {
        let q = content.tensor(&mut file, name, device)?;
        let dtype = q.dtype();
        let (n, k) = q.shape().dims2()?;
        let dense = q.dequantize(device)?.to_dtype(DType::F32)?;
        let matmul = QMatMul::from_qtensor(q)?;
        let mut line = Vec::new();
        for &b in &sizes {
            if name.starts_with("token_embd") && b > 256 {
                continue;
            }
            let x = Tensor::randn(0f32, 1.0, (b, k), device)?;
            let got = matmul.forward(&x)?.to_device(&Device::Cpu)?;
            let want = x.matmul(&dense.t()?)?.to_device(&Device::Cpu)?;
            let (got, want) = (
                got.flatten_all()?.to_vec1::<f32>()?,
                want.flatten_all()?.to_vec1::<f32>()?,
            );
            // Worst row: a bug may touch only some rows of a tile.
            let worst = (0..b)
                .map(|r| rel_err(&got[r * n..(r + 1) * n], &want[r * n..(r + 1) * n]))
                .fold(0f64, f64::max);
            line.push(format!("{b}:{worst:.1e}"));
        }
        println!(
            "{:<26} {:<6} {:>7}  {}",
            name,
            format!("{dtype:?}"),
            format!("{n}x{k}"),
            line.join(" ")
        );
    }
    Ok(())
}
