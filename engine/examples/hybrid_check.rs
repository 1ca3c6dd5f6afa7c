//! Qwen3.5 (hybrid) on a device against the independent references, for the GPU machine
//! (the CPU's checks are `engine/tests/qwen35_engine.rs`): each fixture of
//! `tests/fixtures/qwen35/` prefilled whole and as a prefill, a short pass and single tokens,
//! its logits against transformers' (F32 file) and llama.cpp's (Q8_0 file, mean difference).
//!
//!     cargo run --release --features cuda --example hybrid_check -- cuda|cpu [FIXTURES_DIR]
//!
//! FIXTURES_DIR defaults to this checkout's `tests/fixtures/qwen35` (on the GPU machine, where
//! the binary arrives alone, the carried tree's).

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use k2_engine::gguf::GgufFile;
use k2_engine::model::{load_gguf, logits_to_host, LogitsFor, Model};

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

fn differences(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, f32) {
    let all: Vec<f32> = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .collect();
    let max = all.iter().copied().fold(0.0, f32::max);
    (max, all.iter().sum::<f32>() / all.len() as f32)
}

fn main() -> Result<()> {
    let device = match std::env::args().nth(1).as_deref() {
        Some("cpu") => Device::Cpu,
        Some("cuda") => Device::new_cuda(0)?,
        _ => bail!("usage: hybrid_check cuda|cpu [FIXTURES_DIR]"),
    };
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
        println!(
            "{case} on {device:?}: F32 prefill vs transformers max {whole_max:.2e}; prefill + \
             short pass + single tokens max {stepped_max:.2e}; Q8_0 vs llama.cpp mean {q8_mean:.3}"
        );
        failed |= whole_max > 1e-3 || stepped_max > 1e-3 || q8_mean > 0.06;
    }
    if failed {
        bail!("a check missed its tolerance (F32 1e-3 on a GPU, Q8_0 mean 0.06)");
    }
    Ok(())
}
