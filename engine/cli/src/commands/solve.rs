//! `k2 solve`: one streamed solution to a math problem (the full plan / best-of-3 / verify
//! scaffold builds on this).

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::answer::{extract_answer, AnswerSource};
use k2_engine::chat::ChatMessage;
use k2_engine::generate::{generate, CancelToken, GenerateOptions, StopReason};

use super::generate::SamplingArgs;
use crate::load::{load, ModelArgs};
use crate::output::print_text;

/// What the solver is asked to do; the boxed answer is what gets extracted and checked.
const SOLVER_SYSTEM_PROMPT: &str = "You are a careful competition mathematics tutor. \
Solve the problem step by step, explaining each step briefly. \
End with the final answer in the form \\boxed{ANSWER}.";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The problem statement (LaTeX allowed).
    pub problem: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = load(&args.model, false)?;
    let messages = [
        ChatMessage::system(SOLVER_SYSTEM_PROMPT),
        ChatMessage::user(args.problem.clone()),
    ];
    let prompt = loaded.template.render(&messages, true)?;
    let prompt_ids = loaded.tokenizer.encode_prompt(&prompt, true)?;
    let options = GenerateOptions {
        sampling: args.sampling.params(),
        max_tokens: args.sampling.max_tokens.unwrap_or(2048),
        stop: Vec::new(),
    };
    let styled = std::io::stdout().is_terminal();
    let heading = |s: &str| {
        if styled {
            format!("\x1b[1m{s}\x1b[0m\n")
        } else {
            format!("{s}\n")
        }
    };
    print_text(&heading(&format!("Problem: {}", args.problem)));
    print_text(&heading("Solution:"));
    let cancel = CancelToken::new();
    let generation = generate(
        &loaded.model,
        &loaded.tokenizer,
        &prompt_ids,
        &options,
        &cancel,
        &mut |delta| print_text(delta.text),
    )?;
    print_text("\n\n");
    let answer = extract_answer(&generation.text);
    let unfinished = generation.stop_reason != StopReason::EndOfGeneration;
    match answer {
        // A last number picked from an unfinished solution is not an answer.
        Some(a) if !(unfinished && a.source == AnswerSource::LastNumber) => {
            print_text(&heading(&format!("Answer: {}", a.text)))
        }
        _ if unfinished => print_text(&heading(&format!(
            "Answer: none yet: the solution stopped early ({:?}); raise --max-tokens",
            generation.stop_reason
        ))),
        _ => print_text(&heading("Answer: (the model gave no final answer)")),
    }
    eprintln!(
        "[{} tokens at {:.1} tok/s, stop: {:?}]",
        generation.stats.generated_tokens,
        generation.stats.decode_tokens_per_s,
        generation.stop_reason
    );
    Ok(())
}
