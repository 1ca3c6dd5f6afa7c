//! `k2`: K2 Tutor's command line.

mod commands;
mod load;
mod output;
mod render;
mod run_setup;
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
            eprintln!("error: {e:#}");
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
