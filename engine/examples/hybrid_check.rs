//! Qwen3.5 (hybrid) on a device, for the GPU machine (the CPU's checks are
//! `engine/tests/qwen35_engine.rs`).
//!
//!     cargo run --release --features cuda --example hybrid_check -- cuda|cpu [FIXTURES_DIR]
//!
//! Each fixture of `tests/fixtures/qwen35/` prefilled whole and as a prefill, a short pass and
//! single tokens, its logits against transformers' (F32 file) and llama.cpp's (Q8_0 file,
//! mean difference); and a rewind (a speculative pass cut back, then decoding on) against
//! feeding only the kept tokens. FIXTURES_DIR defaults to this checkout's
//! `tests/fixtures/qwen35` (on the GPU machine, where the binary arrives alone, the carried
//! tree's).
//!
//!     hybrid_check bench cuda|cpu MODEL.gguf [--out FILE.json]
//!
//! Speed on a real-sized file: prefill, batch-1 decoding, and decoding as a fraction of the
//! memory floor (weights and recurrent state read per token at the copy bandwidth measured in
//! the same process).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use k2_engine::gguf::GgufFile;
use k2_engine::model::{load_gguf, logits_to_host, LogitsFor, Model, RollbackMode};
use serde_json::json;

// Shares the helpers of device_bench, not all of which it uses.
#[allow(dead_code)]
mod support;
use support::{argmax, copy_bandwidth};

const CASES: [&str; 2] = ["qwen35-hybrid-k2-v4", "qwen35-tied-k2-v2"];

fn fixture(case: &str) -> PathBuf {
    let root = std::env::args()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen35")
        });
    root.join(case)
}

fn reference(case: &str, file: &str, vocab: usize) -> Result<Vec<Vec<f32>>> {
    let values: Vec<f32> = std::fs::read(fixture(case).join(file))?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(values.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
}

/// Logits of every position, the tokens fed in `chunks` on a fresh one-row cache.
fn logits(model: &Model, chunks: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
    let mut cache = model.new_cache(None);
    cache.add_row()?;
    let mut rows = Vec::new();
    for chunk in chunks {
        let out = model.forward(&mut cache, &[chunk], LogitsFor::All)?;
        let vocab = model.config().vocab_size;
        let flat = logits_to_host(&out)?.concat();
        rows.extend(flat.chunks_exact(vocab).map(<[f32]>::to_vec));
    }
    Ok(rows)
}

/// The logits of `tail` fed one token at a time after `prompt` and `kept`, where the cache
/// was first given `kept` and `dropped` in one rewindable pass and cut back to `kept` (what
/// speculative verification does), against the same tokens never having seen `dropped`.
fn rewind(model: &Model, prompt: &[u32], pass: &[u32], kept: usize, tail: &[u32]) -> Result<f32> {
    let tail_logits = |rewound: bool| -> Result<Vec<Vec<f32>>> {
        let mut cache = model.new_cache(None);
        cache.keep_rollback(16, RollbackMode::Snapshots);
        cache.add_row()?;
        model.forward(&mut cache, &[prompt], LogitsFor::Last)?;
        if rewound {
            model.forward(&mut cache, &[pass], LogitsFor::All)?;
            cache.truncate(0, prompt.len() + kept)?;
        } else {
            model.forward(&mut cache, &[&pass[..kept]], LogitsFor::All)?;
        }
        tail.iter()
            .map(|t| {
                Ok(logits_to_host(&model.forward(&mut cache, &[&[*t]], LogitsFor::All)?)?.concat())
            })
            .collect()
    };
    Ok(differences(&tail_logits(true)?, &tail_logits(false)?).0)
}

fn differences(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, f32) {
    let all: Vec<f32> = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .collect();
    let max = all.iter().copied().fold(0.0, f32::max);
    (max, all.iter().sum::<f32>() / all.len() as f32)
}

fn device(name: Option<&str>) -> Result<Device> {
    Ok(match name {
        Some("cpu") => Device::Cpu,
        Some("cuda") => Device::new_cuda(0)?,
        _ => bail!("usage: hybrid_check cuda|cpu [FIXTURES_DIR] | bench cuda|cpu MODEL.gguf"),
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bench") {
        let model = args.get(2).context("bench needs a MODEL.gguf")?;
        let out = args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1));
        return bench(
            &device(args.get(1).map(String::as_str))?,
            Path::new(model),
            out,
        );
    }
    let device = device(args.first().map(String::as_str))?;
    let mut failed = false;
    for case in CASES {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(case).join("case.json"))?)?;
        let tokens: Vec<u32> = meta["tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_u64())
                    .map(|t| t as u32)
                    .collect()
            })
            .unwrap_or_default();
        let vocab = meta["vocab"].as_u64().unwrap_or(0) as usize;
        let open = |file: &str| -> Result<Model> {
            let gguf = GgufFile::open(&fixture(case).join(file))?;
            Ok(load_gguf(&gguf, &device, &mut |_| {})?)
        };
        let f32_model = open("model-f32.gguf")?;
        let transformers = reference(case, "reference-transformers.f32", vocab)?;
        let whole = logits(&f32_model, &[&tokens])?;
        let (prompt, rest) = tokens.split_at(40);
        let (short, rest) = rest.split_at(6);
        let mut chunks: Vec<&[u32]> = vec![prompt, short];
        chunks.extend(rest.chunks(1));
        let stepped = logits(&f32_model, &chunks)?;
        let q8 = logits(&open("model-q8_0.gguf")?, &[&tokens])?;
        let llama_q8 = reference(case, "reference-llamacpp-q8_0.f32", vocab)?;
        let (whole_max, _) = differences(&whole, &transformers);
        let (stepped_max, _) = differences(&stepped, &transformers);
        let (_, q8_mean) = differences(&q8, &llama_q8);
        let (pass, tail) = rest.split_at(8);
        let rewound = rewind(&f32_model, prompt, pass, 3, &tail[..4])?;
        println!(
            "{case} on {device:?}: F32 prefill vs transformers max {whole_max:.2e}; prefill + \
             short pass + single tokens max {stepped_max:.2e}; Q8_0 vs llama.cpp mean \
             {q8_mean:.3}; rewound 8 -> 3 then decoding vs never fed max {rewound:.2e}"
        );
        failed |= whole_max > 1e-3 || stepped_max > 1e-3 || q8_mean > 0.06 || rewound > 1e-3;
    }
    if failed {
        bail!("a check missed its tolerance (F32 1e-3 on a GPU, Q8_0 mean 0.06)");
    }
    Ok(())
}

/// Prefill and batch-1 greedy decoding of `path`, and decoding against the memory floor.
fn bench(device: &Device, path: &Path, out: Option<&String>) -> Result<()> {
    const PROMPT: usize = 512;
    const STEPS: usize = 256;
    let bandwidth = copy_bandwidth(device)?;
    let gguf = GgufFile::open(path)?;
    let model = load_gguf(&gguf, device, &mut |_| {})?;
    let vocab = model.config().vocab_size as u32;
    // Ids spread over the vocabulary (the weights are what is timed, not the text).
    let prompt: Vec<u32> = (0..PROMPT as u32)
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    let run = || -> Result<(f64, f64, Vec<u32>)> {
        let mut cache = model.new_cache(Some(PROMPT + STEPS + 1));
        cache.add_row()?;
        let start = Instant::now();
        let logits = model.forward(&mut cache, &[&prompt], LogitsFor::Last)?;
        let mut next = argmax(&logits_to_host(&logits)?.concat());
        let prefill = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut tokens = Vec::with_capacity(STEPS);
        for _ in 0..STEPS {
            tokens.push(next);
            let logits = model.forward(&mut cache, &[&[next]], LogitsFor::Last)?;
            next = argmax(&logits_to_host(&logits)?.concat());
        }
        Ok((prefill, start.elapsed().as_secs_f64(), tokens))
    };
    run()?; // Warm-up: kernels compiled and loaded, memory pools grown.
    let (prefill_s, decode_s, tokens) = run()?;
    let (_, _, again) = run()?;
    let weights = model.decode_weight_bytes() as f64;
    let state = model.decode_state_bytes() as f64;
    let floor_ms = (weights + state) / (bandwidth * 1e9) * 1e3;
    let step_ms = decode_s / STEPS as f64 * 1e3;
    let report = json!({
        "model": path.display().to_string(),
        "device": format!("{device:?}"),
        "copy_bandwidth_gb_s": bandwidth,
        "weight_bytes_per_step": weights,
        "state_bytes_per_step": state,
        "prefill_tokens": PROMPT,
        "prefill_tok_s": PROMPT as f64 / prefill_s,
        "decode_steps": STEPS,
        "decode_ms_per_token": step_ms,
        "decode_tok_s": 1e3 / step_ms,
        "floor_ms_per_token": floor_ms,
        "fraction_of_floor": floor_ms / step_ms,
        "greedy_repeatable": tokens == again,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
