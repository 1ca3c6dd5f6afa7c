//! Resolving `--model`/`--device` and loading with a progress bar on the terminal.

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use k2_engine::device::{select_device, DeviceChoice};
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::models_dir::resolve_model;

#[derive(ClapArgs, Debug, Clone)]
pub struct ModelArgs {
    /// A .gguf file, a Hugging Face model folder, or the name of an installed model.
    #[arg(long, short = 'm', env = "K2_MODEL")]
    pub model: Option<String>,
    /// Where to run: auto (CUDA, else Metal, else CPU), cpu, cuda, metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn load(args: &ModelArgs, quiet: bool) -> Result<LoadedModel> {
    let Some(model) = &args.model else {
        anyhow::bail!("no model given: add --model PATH or NAME (see `k2 models`)");
    };
    let path = resolve_model(model)?;
    let selected = select_device(args.device)?;
    tracing::info!(device = selected.name, reason = %selected.reason, "device selected");
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("loading {msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        bar
    };
    let loaded = load_model(&path, &selected.device, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    })?;
    bar.finish_and_clear();
    Ok(loaded)
}
