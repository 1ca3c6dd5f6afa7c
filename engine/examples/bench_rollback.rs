//! What undoing rejected drafts costs a hybrid model (Qwen3.5), whose recurrent layers cannot
//! simply forget positions: each round feeds a verification pass of `DRAFTED` tokens and
//! keeps `ACCEPTED` of them, with the state kept as snapshots after every token or replayed
//! from the window's start (`RollbackMode`), against the same passes with nothing kept and no
//! rewind. The three run interleaved round by round in one process (machines are noisy);
//! prints each one's time per round, its ratio to the bare pass, and the bytes a row keeps.
//!
//!     cargo run --release --example bench_rollback -- MODEL.gguf [ROUNDS]

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use k2_engine::gguf::GgufFile;
use k2_engine::model::{load_gguf, KvCache, LogitsFor, Model, RollbackMode};

const PROMPT: usize = 64;
const DRAFTED: usize = 8;
const ACCEPTED: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Setting {
    Bare,
    Keep(RollbackMode),
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Bare => "pass only, nothing kept",
            Setting::Keep(RollbackMode::Snapshots) => "snapshots",
            Setting::Keep(RollbackMode::Replay) => "replay",
        }
    }
}

/// A pseudo-random token id below `vocab` (the values do not matter, only the work).
fn ids(seed: usize, count: usize, vocab: usize) -> Vec<u32> {
    (0..count)
        .map(|i| ((seed * 7919 + i * 104_729) % vocab) as u32)
        .collect()
}

fn prefilled(model: &Model, setting: Setting) -> Result<KvCache> {
    let mut cache = model.new_cache(None);
    if let Setting::Keep(mode) = setting {
        cache.keep_rollback(KvCache::REWINDABLE_PASS, mode);
    }
    cache.add_row()?;
    let vocab = model.config().vocab_size;
    model.forward(&mut cache, &[&ids(1, PROMPT, vocab)], LogitsFor::Last)?;
    Ok(cache)
}

/// One round: a verification pass, then (where something was kept) the rewind.
fn round(model: &Model, cache: &mut KvCache, setting: Setting, seed: usize) -> Result<f64> {
    let drafts = ids(seed, DRAFTED, model.config().vocab_size);
    let before = cache.len(0);
    let started = Instant::now();
    model.forward(cache, &[&drafts], LogitsFor::All)?;
    if setting != Setting::Bare {
        cache.truncate(0, before + ACCEPTED)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        bail!("usage: bench_rollback MODEL.gguf [ROUNDS]");
    };
    let rounds: usize = args.get(1).map_or(Ok(12), |r| r.parse())?;
    let gguf = GgufFile::open(path.as_ref()).context("opening the model")?;
    let model = load_gguf(&gguf, &Device::Cpu, &mut |_| {})?;
    let Some(linear) = model.config().switches.linear_attention.clone() else {
        bail!("{path} has no recurrent layers");
    };
    let settings = [
        Setting::Bare,
        Setting::Keep(RollbackMode::Snapshots),
        Setting::Keep(RollbackMode::Replay),
    ];
    let mut caches = settings
        .iter()
        .map(|&s| prefilled(&model, s))
        .collect::<Result<Vec<_>>>()?;
    let mut seconds = [Vec::new(), Vec::new(), Vec::new()];
    for r in 0..rounds {
        for (i, &setting) in settings.iter().enumerate() {
            seconds[i].push(round(&model, &mut caches[i], setting, r + 2)?);
        }
    }
    // The first round warms caches and thread pools.
    let median = |s: &[f64]| {
        let mut s = s[1..].to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let recurrent_layers = linear.recurrent.iter().filter(|&&r| r).count();
    let state_bytes = recurrent_layers
        * 4
        * (linear.value_heads * linear.key_dim * linear.value_dim
            + (linear.conv_taps - 1) * linear.conv_channels());
    // A replayed token keeps its convolution input and the recurrence's q, k, v, g, beta.
    let token_bytes = recurrent_layers
        * 4
        * (linear.conv_channels()
            + linear.value_heads * (2 * linear.key_dim + linear.value_dim + 2));
    let kept = |setting: Setting| match setting {
        Setting::Bare => 0,
        Setting::Keep(RollbackMode::Snapshots) => (DRAFTED + 1) * state_bytes,
        Setting::Keep(RollbackMode::Replay) => state_bytes + DRAFTED * token_bytes,
    };
    let bare = median(&seconds[0]);
    println!(
        "{path}: {recurrent_layers} recurrent layers, state {:.1} MB a row; a pass of {DRAFTED} \
         tokens keeping {ACCEPTED}, median of {} rounds",
        state_bytes as f64 / 1e6,
        rounds - 1
    );
    println!("| rollback | ms per round | vs pass only | kept per row |");
    println!("|---|---|---|---|");
    for (i, &setting) in settings.iter().enumerate() {
        let m = median(&seconds[i]);
        println!(
            "| {} | {:.1} | {:.3}x | {:.1} MB |",
            setting.name(),
            m * 1e3,
            m / bare,
            kept(setting) as f64 / 1e6
        );
    }
    Ok(())
}
