//! `k2 models`: what is installed, where.

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::models_dir::{list_models, models_dir, MODELS_DIR_ENV};

use crate::output::{print_json_line, Format};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: Args) -> Result<()> {
    let dir = models_dir();
    let models = list_models(&dir);
    if args.format == Format::Jsonl {
        for m in &models {
            print_json_line(m);
        }
        return Ok(());
    }
    println!(
        "models directory: {} (set {MODELS_DIR_ENV} to change)",
        dir.display()
    );
    if models.is_empty() {
        println!(
            "no models installed: run scripts/fetch-test-models.sh, or copy a .gguf file there"
        );
        return Ok(());
    }
    println!(
        "{:<44} {:>9} {:<8} {:<12} {:>8}",
        "NAME", "SIZE", "ARCH", "QUANT", "CONTEXT"
    );
    for m in &models {
        println!(
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
