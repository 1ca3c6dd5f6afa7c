//! `k2 generate`: one model, one prompt, streamed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::BatchOptions;
use k2_engine::decode::plain::{generate, CancelToken, GenerateOptions, Generation};
use k2_engine::decode::sample::SamplingParams;
use k2_engine::decode::speculative::generate_speculative;
use k2_protocol::Effort;
use serde_json::json;

use crate::load::{load, ModelArgs};
use crate::output::{print_json_line, print_text, Format};
use crate::sampling_args::SamplingArgs;
use crate::spec_setup::SpecArgs;

// Greedy and at most 512 tokens unless told otherwise: the two departures from the shared
// sampling defaults, documented (with why) on `SamplingArgs`. A plain comment: a doc comment
// here would become the subcommand's about text.
#[derive(ClapArgs, Debug)]
#[command(
    mut_arg("temperature", |a| a.default_value("0")),
    mut_arg("max_tokens", |a| a.default_value("512"))
)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt text.
    #[arg(
        long,
        short = 'p',
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Use the prompt as is, without the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// A system message (chat template only).
    #[arg(long)]
    pub system: Option<String>,
    /// Reasoning effort: low, medium or high (chat template only) [default: the model's own].
    #[arg(long, conflicts_with = "raw")]
    pub effort: Option<Effort>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Stop when the output contains this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub spec: SpecArgs,
}

pub fn run(args: Args) -> Result<()> {
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the prompt from {}", f.display()))?,
        (None, None) => unreachable!("clap requires --prompt or --prompt-file"),
    };
    let loaded = load(&args.model, args.format == Format::Jsonl)?;
    let prompt_ids = if args.raw {
        loaded.tokenizer.encode_prompt(&prompt, false)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(prompt));
        // The template's own special tokens are parsed; the prompt and system text are
        // tokenized as text ("<|im_end|>" typed in them stays characters).
        loaded.chat_prompt(&messages, args.effort)?.ids
    };
    let sampling = args.sampling.settings();
    let options = GenerateOptions {
        sampling: SamplingParams::from(&sampling),
        max_tokens: sampling.max_tokens,
        stop: args.stop.clone(),
        effort: args.effort,
        ..GenerateOptions::default()
    };
    let cancel = CancelToken::new();
    let jsonl = args.format == Format::Jsonl;
    let speculation = args.spec.load(&loaded, &args.model, jsonl)?;
    let mut on_delta = |delta: k2_engine::decode::plain::Delta<'_>| {
        if jsonl {
            print_json_line(&json!({"token_id": delta.token_id, "text": delta.text}));
        } else {
            print_text(delta.text);
        }
    };
    let generation: Generation = match &speculation {
        None => generate(
            &loaded.model,
            &loaded.tokenizer,
            &prompt_ids,
            &options,
            &cancel,
            &mut on_delta,
        )?,
        Some(spec) => {
            let batch = BatchOptions {
                n: 1,
                generate: options.clone(),
            };
            let (mut batch, _) = generate_speculative(
                &loaded.model,
                &loaded.tokenizer,
                &prompt_ids,
                &batch,
                spec.drafter.source(),
                &spec.tuning,
                &cancel,
                &mut |_, delta| on_delta(delta),
            )?;
            batch.rows.remove(0)
        }
    };
    let stats = &generation.stats;
    let acceptance_rate = (stats.drafted_tokens > 0)
        .then(|| stats.accepted_draft_tokens as f64 / stats.drafted_tokens as f64);
    if jsonl {
        print_json_line(&json!({
            "text": generation.text,
            "token_ids": generation.token_ids,
            "stop_reason": generation.stop_reason,
            "stats": {
                "prompt_tokens": generation.stats.prompt_tokens,
                "generated_tokens": generation.stats.generated_tokens,
                "prefill_tokens_per_s": generation.stats.prefill_tokens_per_s,
                "decode_tokens_per_s": generation.stats.decode_tokens_per_s,
                "prefill_seconds": generation.stats.prefill_seconds,
                "decode_seconds": generation.stats.decode_seconds,
                "target_passes": stats.target_passes,
                "drafted_tokens": stats.drafted_tokens,
                "accepted_draft_tokens": stats.accepted_draft_tokens,
                "acceptance_rate": acceptance_rate,
                "peak_rss_bytes": peak_rss_bytes(),
            },
        }));
    } else {
        print_text("\n");
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, stop: {:?}]",
            generation.stats.prompt_tokens,
            generation.stats.prefill_tokens_per_s,
            generation.stats.generated_tokens,
            generation.stats.decode_tokens_per_s,
            generation.stop_reason
        );
        if let Some(rate) = acceptance_rate {
            eprintln!(
                "[speculative: {} drafted, {} accepted ({:.0}%), {:.2} tokens per pass of the model]",
                stats.drafted_tokens,
                stats.accepted_draft_tokens,
                rate * 100.0,
                stats.generated_tokens as f64 / (stats.target_passes + 1) as f64
            );
        }
    }
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), for memory budgets in tests.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
