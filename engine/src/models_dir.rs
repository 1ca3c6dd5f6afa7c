//! The models directory: where installed models live, finding one by name, describing each.
//!
//! `K2_MODELS_DIR` overrides the platform data directory (`~/.local/share/k2-tutor/models` on
//! Linux, `~/Library/Application Support/k2-tutor/models` on macOS, `%APPDATA%\k2-tutor\models`
//! on Windows), so lab machines can share one read-only folder.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::model::ModelConfig;

pub const MODELS_DIR_ENV: &str = "K2_MODELS_DIR";

/// The directory models are installed in (it may not exist yet).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("k2-tutor")
        .join("models")
}

/// What kind of thing a model path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Gguf,
    /// A Hugging Face folder: config.json, *.safetensors, tokenizer.json.
    Safetensors,
}

/// One installed model, as `k2 models` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub path: PathBuf,
    pub format: ModelFormat,
    pub size_bytes: u64,
    pub architecture: String,
    pub quantization: String,
    pub context_length: Option<usize>,
    pub parameters: Option<u64>,
}

/// Resolves `--model`: an existing path, or a name (file stem or file name) in the models dir.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    resolve_model_in(spec, &models_dir())
}

/// Resolves a model path or name, names looked up in `dir`.
pub fn resolve_model_in(spec: &str, dir: &Path) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.exists() {
        return Ok(as_path.to_owned());
    }
    let candidates = [dir.join(spec), dir.join(format!("{spec}.gguf"))];
    if let Some(found) = candidates.into_iter().find(|p| p.exists()) {
        return Ok(found);
    }
    // A unique prefix of an installed model's name is enough ("qwen2.5-coder-1.5b").
    let matches: Vec<ModelInfo> = list_models(dir)
        .into_iter()
        .filter(|m| m.name.starts_with(spec))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.path.clone()),
        [] => Err(EngineError::ModelNotFound(spec.to_owned())),
        many => Err(EngineError::InvalidSetting(format!(
            "`{spec}` matches several installed models: {}",
            many.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every model in `dir`, sorted by name. Unreadable entries are skipped with a warning.
pub fn list_models(dir: &Path) -> Vec<ModelInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut models: Vec<ModelInfo> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_gguf_path(p) || p.join("config.json").exists())
        .filter_map(|p| match describe_model(&p) {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!("skipping {}: {e}", p.display());
                None
            }
        })
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
}

fn is_gguf_path(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Reads what a model is without loading its weights.
pub fn describe_model(path: &Path) -> Result<ModelInfo> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
        .unwrap_or_default();
    match model_format(path)? {
        ModelFormat::Gguf => {
            let gguf = GgufFile::open(path)?;
            let config = ModelConfig::from_gguf(&gguf).ok();
            let parameters = gguf
                .content
                .tensor_infos
                .values()
                .map(|t| t.shape.elem_count() as u64)
                .sum();
            Ok(ModelInfo {
                name,
                path: path.to_owned(),
                format: ModelFormat::Gguf,
                size_bytes: gguf.file_size,
                architecture: gguf.architecture().unwrap_or("unknown").to_owned(),
                quantization: gguf.quantization_label(),
                context_length: config.map(|c| c.context_length),
                parameters: Some(parameters),
            })
        }
        ModelFormat::Safetensors => {
            let config = ModelConfig::from_hf_config(&path.join("config.json"))?;
            let files = crate::model::safetensors_files(path)?;
            let size_bytes = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
            Ok(ModelInfo {
                name,
                path: path.to_owned(),
                format: ModelFormat::Safetensors,
                size_bytes,
                architecture: config.architecture.name().to_owned(),
                quantization: "dense (safetensors)".into(),
                context_length: Some(config.context_length),
                parameters: None,
            })
        }
    }
}

/// Decides whether `path` is a GGUF file or a Hugging Face folder, or says what is wrong.
pub fn model_format(path: &Path) -> Result<ModelFormat> {
    let meta = std::fs::metadata(path).map_err(|e| EngineError::io(path, e))?;
    if meta.is_file() {
        return Ok(ModelFormat::Gguf);
    }
    let missing: Vec<&str> = ["config.json", "tokenizer.json"]
        .into_iter()
        .filter(|f| !path.join(f).exists())
        .collect();
    if missing.is_empty() {
        Ok(ModelFormat::Safetensors)
    } else {
        Err(EngineError::NotAModel {
            path: path.to_owned(),
            reason: format!(
                "it is a folder without {} (a model folder needs config.json, tokenizer.json and *.safetensors; or pass a .gguf file)",
                missing.join(" and ")
            ),
        })
    }
}
