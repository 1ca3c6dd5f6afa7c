//! Installing models into the models directory: importing a `.gguf` file or a Hugging Face
//! folder from disk (copied, or linked to save space), and downloading from Hugging Face with
//! resume and checksum ([`download`]).
//!
//! Nothing half-written is ever visible under a model's name: files are written as
//! `*.partial` and renamed once complete and checked, so a crash or a full disk leaves the
//! installed models as they were.

pub mod catalogue;
pub mod download;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::models_dir::{describe_model, ModelInfo};

/// How an imported model gets into the models directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    Copy,
    /// A symbolic link to the original (which must stay where it is).
    Link,
}

/// Progress of a long install: bytes done of bytes in all (when known).
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Imports the model at `source` (a `.gguf` file or a Hugging Face folder) into `dir`, after
/// checking that it is a model this engine can describe. Answers the installed model.
pub fn import_model(
    source: &Path,
    dir: &Path,
    mode: ImportMode,
    progress: Progress,
) -> Result<ModelInfo> {
    // A damaged or foreign file is refused before anything is written.
    describe_model(source)?;
    let name = source.file_name().ok_or_else(|| {
        EngineError::InvalidSetting(format!("{} has no file name", source.display()))
    })?;
    let target = dir.join(name);
    refuse_existing(&target)?;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    match mode {
        ImportMode::Link => link(
            &source
                .canonicalize()
                .map_err(|e| EngineError::io(source, e))?,
            &target,
        )?,
        ImportMode::Copy if source.is_dir() => copy_folder(source, &target, progress)?,
        ImportMode::Copy => {
            let partial = partial_path(&target);
            let total = source
                .metadata()
                .map_err(|e| EngineError::io(source, e))?
                .len();
            copy_file(source, &partial, total, progress)?;
            rename(&partial, &target)?;
        }
    }
    describe_model(&target)
}

fn refuse_existing(target: &Path) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        return Err(EngineError::AlreadyInstalled {
            name: name.trim_end_matches(".gguf").to_owned(),
            path: target.to_owned(),
        });
    }
    Ok(())
}

/// `name.partial` beside `target`: where a file is written until it is complete.
pub(crate) fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| EngineError::io(to, e))
}

#[cfg(unix)]
fn link(original: &Path, target: &Path) -> Result<()> {
    std::os::unix::fs::symlink(original, target).map_err(|e| EngineError::io(target, e))
}

#[cfg(not(unix))]
fn link(_original: &Path, target: &Path) -> Result<()> {
    Err(EngineError::InvalidSetting(format!(
        "linking models is not supported on this system; copy it instead ({})",
        target.display()
    )))
}

/// Reads `path` from start to end in 1 MiB chunks, handing each to `chunk`.
fn for_each_chunk(path: &Path, mut chunk: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| EngineError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        chunk(&buffer[..n])?;
    }
}

fn copy_file(source: &Path, to: &Path, total: u64, progress: Progress) -> Result<()> {
    let mut output = File::create(to).map_err(|e| EngineError::io(to, e))?;
    let mut done = 0u64;
    let copied = for_each_chunk(source, |bytes| {
        output
            .write_all(bytes)
            .map_err(|e| EngineError::io(to, e))?;
        done += bytes.len() as u64;
        progress(done, Some(total));
        Ok(())
    })
    .and_then(|()| output.sync_all().map_err(|e| EngineError::io(to, e)));
    if copied.is_err() {
        // Half a copy is never left behind (a full disk, an unreadable source).
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Copies a Hugging Face folder (its files, not subfolders) as `target.partial/`, then renames.
fn copy_folder(source: &Path, target: &Path, progress: Progress) -> Result<()> {
    let files: Vec<PathBuf> = std::fs::read_dir(source)
        .map_err(|e| EngineError::io(source, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    let total: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let partial = partial_path(target);
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| EngineError::io(&partial, e))?;
    let mut before = 0u64;
    for file in &files {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let to = partial.join(file.file_name().unwrap_or_default());
        copy_file(file, &to, size, &mut |done, _| {
            progress(before + done, Some(total))
        })?;
        before += size;
    }
    rename(&partial, target)
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    for_each_chunk(path, |bytes| {
        hasher.update(bytes);
        Ok(())
    })?;
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
