//! Prints the top-5 logits at every position of a raw prompt, as JSON: a debugging aid for
//! comparing the forward pass with another engine (see tests/golden/make_goldens.py).
//!
//! `cargo run --release -p k2-engine --example top_logits -- MODEL.gguf "prompt text"`

use k2_engine::loader::load_model;
use k2_engine::model::LogitsFor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, prompt] = args.as_slice() else {
        return Err("usage: top_logits MODEL PROMPT".into());
    };
    let loaded = load_model(model.as_ref(), &candle_core::Device::Cpu, &mut |_| {})?;
    let ids = loaded.tokenizer.encode_prompt(prompt, false)?;
    let mut cache = loaded.model.new_cache(None);
    cache.add_row()?;
    let logits = loaded.model.forward(&mut cache, &[&ids], LogitsFor::All)?;
    let mut top5 = Vec::new();
    let rows = logits[0].to_vec2::<f32>()?;
    // K2_DUMP_LOGITS=FILE also writes every logit as little-endian f32, row after row.
    if let Some(file) = std::env::var_os("K2_DUMP_LOGITS") {
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(file, bytes)?;
    }
    for row in rows {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        top5.push(
            order[..5]
                .iter()
                .map(|&t| (t, (row[t] * 1000.0).round() / 1000.0))
                .collect::<Vec<_>>(),
        );
    }
    println!("{}", serde_json::json!({"ids": ids, "top5": top5}));
    Ok(())
}
