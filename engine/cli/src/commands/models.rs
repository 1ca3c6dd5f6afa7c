//! `k2 models`: what is installed, where; `k2 models import` and `k2 models download` install
//! more.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use k2_engine::decode::plain::CancelToken;
use k2_engine::install::catalogue::{
    catalogue_problem, find_recommended, recommended, recommended_for, MachineMemory,
    RAM_CONTEXT_TOKENS, RAM_SHARE,
};
use k2_engine::install::download::{download_model, HfFile};
use k2_engine::install::{import_model, ImportMode};
use k2_engine::models_dir::{list_models, models_dir, ModelInfo, MODELS_DIR_ENV};

use crate::output::{print_json_line, Format};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Output format (before or after the action: `k2 models recommended --format jsonl`).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Copy (or link) a .gguf file or a Hugging Face model folder into the models directory.
    Import {
        path: PathBuf,
        /// Link to the file instead of copying it (it must then stay where it is).
        #[arg(long)]
        link: bool,
    },
    /// The recommended maths models, with the memory each needs and whether it fits here.
    Recommended,
    /// Download a model file from Hugging Face (resumes an interrupted download; HF_ENDPOINT
    /// selects a mirror): a recommended model by name, or any repository and file.
    Download {
        /// A recommended model's name (e.g. Qwen3-4B), or a repository, e.g.
        /// Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF.
        repo: String,
        /// The file in the repository, e.g. qwen2.5-coder-1.5b-instruct-q4_k_m.gguf (omit it
        /// for a recommended model).
        file: Option<String>,
        #[arg(long, default_value = "main")]
        revision: String,
        /// The expected SHA-256 (else the checksum Hugging Face publishes is checked).
        #[arg(long)]
        sha256: Option<String>,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.action {
        None => list(args.format),
        Some(Action::Import { path, link }) => {
            let mode = if link {
                ImportMode::Link
            } else {
                ImportMode::Copy
            };
            let bar = bytes_bar("importing");
            let info = import_model(&path, &models_dir(), mode, &mut |done, total| {
                bar.set_length(total.unwrap_or(0));
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            installed(&info, args.format);
            Ok(())
        }
        Some(Action::Recommended) => {
            print_recommended(args.format);
            Ok(())
        }
        Some(Action::Download {
            repo,
            file,
            revision,
            sha256,
        }) => {
            let wanted = match file {
                Some(file) => HfFile {
                    repo,
                    file,
                    revision,
                    sha256,
                },
                None => recommended_file(&repo)?,
            };
            crate::eoutln!("downloading {}", wanted.url());
            let bar = bytes_bar("downloading");
            let info = download_model(
                &wanted,
                &models_dir(),
                &mut |done, total| {
                    bar.set_length(total.unwrap_or(0));
                    bar.set_position(done);
                },
                &CancelToken::new(),
            )?;
            bar.finish_and_clear();
            installed(&info, args.format);
            Ok(())
        }
    }
}

/// The download of the recommended model `name`, or why there is none.
fn recommended_file(name: &str) -> Result<HfFile> {
    let Some(model) = find_recommended(name) else {
        let names: Vec<&str> = recommended().iter().map(|m| m.name.as_str()).collect();
        anyhow::bail!(
            "`{name}` is not a recommended model (name a repository and a file, or one of: {})",
            names.join(", ")
        );
    };
    model.hf_file().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no published file to download: {}",
            model.name,
            model.notes.join(" ")
        )
    })
}

fn print_recommended(format: Format) {
    if let Some(problem) = catalogue_problem() {
        crate::eoutln!("warning: {problem}");
    }
    let machine = MachineMemory::detect();
    let models = recommended_for(machine);
    if format == Format::Jsonl {
        for m in &models {
            print_json_line(m);
        }
        return;
    }
    let memory = |b: Option<u64>| b.map(human_size).unwrap_or_else(|| "unknown".into());
    crate::outln!(
        "this machine: {} of memory{}; a model may use {:.0}% of it (RAM stated at {} tokens of context)",
        memory(machine.ram_bytes),
        machine
            .gpu_bytes
            .map(|g| format!(", a GPU with {}", human_size(g)))
            .unwrap_or_default(),
        RAM_SHARE * 100.0,
        RAM_CONTEXT_TOKENS
    );
    crate::outln!(
        "{:<30} {:<11} {:>9} {:>9}  {:<10} WHY",
        "NAME",
        "FAMILY",
        "FILE",
        "RAM",
        "FITS"
    );
    for m in &models {
        let fits = match (m.downloadable, m.fits) {
            (false, _) => "no file",
            (true, Some(true)) => "fits",
            (true, Some(false)) => "too large",
            (true, None) => "unknown",
        };
        crate::outln!(
            "{:<30} {:<11} {:>9} {:>9}  {:<10} {}",
            m.model.name,
            m.model.family,
            memory(m.model.bytes),
            memory(m.ram_bytes),
            fits,
            // Curated text, but a terminal gets no control characters from a data file.
            m.model.why.replace(|c: char| c.is_control(), " ")
        );
    }
    crate::outln!("download one with: k2 models download NAME");
}

fn bytes_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn installed(info: &ModelInfo, format: Format) {
    if format == Format::Jsonl {
        print_json_line(info);
    } else {
        crate::outln!(
            "installed {} ({}, {}, {}) at {}",
            info.name,
            human_size(info.size_bytes),
            info.architecture,
            info.quantization,
            info.path.display()
        );
    }
}

fn list(format: Format) -> Result<()> {
    let dir = models_dir();
    let models = list_models(&dir);
    if format == Format::Jsonl {
        for m in &models {
            print_json_line(m);
        }
        return Ok(());
    }
    crate::outln!(
        "models directory: {} (set {MODELS_DIR_ENV} to change)",
        dir.display()
    );
    if models.is_empty() {
        crate::outln!(
            "no models installed: run scripts/fetch-test-models.sh, or copy a .gguf file there"
        );
        return Ok(());
    }
    crate::outln!(
        "{:<44} {:>9} {:<8} {:<12} {:>8}",
        "NAME",
        "SIZE",
        "ARCH",
        "QUANT",
        "CONTEXT"
    );
    for m in &models {
        crate::outln!(
            "{:<44} {:>9} {:<8} {:<12} {:>8}",
            m.name,
            human_size(m.size_bytes),
            m.architecture,
            m.quantization,
            m.context_length.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}
