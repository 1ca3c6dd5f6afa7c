//! `k2`: K2 Tutor's command line.

mod commands;
#[cfg(test)]
mod hint_options;
mod load;
mod output;
mod render;
mod run_setup;
mod sampling_args;
mod spec_setup;
mod store_setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "k2",
    version,
    about = "K2 Tutor: competition math with a local reasoning model"
)]
struct Cli {
    /// Log verbosity: error, warn, info, debug, trace (also RUST_LOG).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt with one model.
    Generate(commands::generate::Args),
    /// Solve a math problem, streaming the solution.
    Solve(commands::solve::Args),
    /// List installed models.
    Models(commands::models::Args),
    /// Evaluate the scaffold's modes on a problem set.
    Eval(commands::eval::Args),
    /// Measure prefill and decode speed.
    Bench(commands::bench::Args),
    /// Stored runs: list, search, show, export, notes, problem sets.
    History(commands::history::Args),
    /// Serve a model to a classroom: OpenAI-compatible API, the scaffold, the browser UI.
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: candle reads its thread settings from the environment once.
    let threads = match &cli.command {
        Command::Bench(args) => args.threads,
        _ => None,
    };
    k2_engine::set_cpu_threads(threads.unwrap_or_else(k2_engine::available_cores));
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Solve(args) => commands::solve::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::History(args) => commands::history::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote files, models and servers: through the terminal sanitizer.
            output::eprint_text(&format!("error: {e:#}\n"));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use k2_protocol::SamplingSettings;

    use super::{Cli, Command};

    fn sampling_of(args: &[&str]) -> SamplingSettings {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Generate(args) => args.sampling.settings(),
            Command::Solve(args) => args.scaffold.settings().sampling,
            Command::Eval(args) => args.scaffold.settings().sampling,
            _ => unreachable!("a command with sampling flags"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn solve_and_eval_sample_with_the_protocols_defaults() {
        let defaults = SamplingSettings::default();
        assert_eq!(sampling_of(&["k2", "solve", "1+1?"]), defaults);
        let eval = ["k2", "eval", "--data", "x.jsonl", "--mode", "single"];
        assert_eq!(sampling_of(&eval), defaults);
    }

    #[test]
    fn generate_is_greedy_and_shorter_by_default_and_otherwise_the_same() {
        assert_eq!(
            sampling_of(&["k2", "generate", "-p", "hi"]),
            SamplingSettings {
                temperature: 0.0,
                max_tokens: 512,
                ..SamplingSettings::default()
            }
        );
        let flags = ["--temperature", "0.7", "--max-tokens", "9", "--top-k", "4"];
        let given = |command: &[&str]| sampling_of(&[command, &flags].concat());
        let expected = SamplingSettings {
            temperature: 0.7,
            max_tokens: 9,
            top_k: 4,
            ..SamplingSettings::default()
        };
        assert_eq!(given(&["k2", "generate", "-p", "hi"]), expected);
        assert_eq!(given(&["k2", "solve", "1+1?"]), expected);
    }
}
