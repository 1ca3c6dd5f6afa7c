//! The recommended maths models: a curated list kept in the repository
//! (`recommended.json`, with the published size and SHA-256 of each file and where those facts
//! come from), and whether each fits this machine.
//!
//! The RAM a model needs is its file (the weights are held as stored), its key/value cache at
//! [`RAM_CONTEXT_TOKENS`] (this engine keeps the cache in f32) and a fixed allowance for the
//! rest of the process. A model fits when that is at most [`RAM_SHARE`] of the machine's
//! memory, leaving the rest to the system and the app's window.
//!
//! `K2_CATALOGUE_EXTRA` names a JSON file with more entries in the same shape (a lab's own
//! mirror, or a test's stand-in hub): an entry with the name of a shipped one replaces it,
//! the others are added at the end. A file that cannot be read leaves the shipped list as it
//! is and is reported ([`catalogue_problem`]), never fatal.

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::download::HfFile;

/// The context the RAM figures are stated at: a long reasoning trace plus the problem.
pub const RAM_CONTEXT_TOKENS: u64 = 8192;
/// Everything but weights and cache: activations, tokenizer, the app itself.
const PROCESS_ALLOWANCE_BYTES: u64 = 512 << 20;
/// The share of the machine's memory a model may take.
pub const RAM_SHARE: f64 = 0.8;

/// One entry of the catalogue, as `recommended.json` states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendedModel {
    pub name: String,
    /// The GGUF architecture: `qwen2`, `qwen3`, `k2-horizon`.
    pub family: String,
    /// Hugging Face repository and file; `None` where no file is published to download.
    pub repo: Option<String>,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    /// Whether `bytes` is the exact published size (else as a page rounds it).
    pub bytes_exact: bool,
    /// The file's published SHA-256, where a source confirmed it.
    pub sha256: Option<String>,
    /// Key/value cache geometry, for the RAM figure.
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub geometry_confirmed: bool,
    pub context_length: Option<u64>,
    pub params: String,
    pub license: String,
    /// One line on why a student would pick it.
    pub why: String,
    /// What is unconfirmed or unusual about the entry.
    pub notes: Vec<String>,
    /// Where the size, hash and scores come from.
    pub sources: Vec<String>,
}

impl RecommendedModel {
    /// Bytes of key/value cache for `tokens` positions (f32 keys and values, every layer).
    pub fn cache_bytes(&self, tokens: u64) -> u64 {
        2 * self.layers * self.kv_heads * self.head_dim * 4 * tokens
    }

    /// Memory needed to run it at [`RAM_CONTEXT_TOKENS`] of context.
    pub fn ram_bytes(&self) -> Option<u64> {
        Some(self.bytes? + self.cache_bytes(RAM_CONTEXT_TOKENS) + PROCESS_ALLOWANCE_BYTES)
    }

    /// The file to download, checked against the pinned hash where there is one (else against
    /// the checksum Hugging Face serves).
    pub fn hf_file(&self) -> Option<HfFile> {
        Some(HfFile {
            repo: self.repo.clone()?,
            file: self.file.clone()?,
            revision: String::new(),
            sha256: self.sha256.clone(),
        })
    }

    /// The name the file is installed under in the models directory.
    pub fn installed_name(&self) -> Option<&str> {
        let file = self.file.as_deref()?;
        Some(file.rsplit('/').next().unwrap_or(file))
    }
}

/// The environment variable naming a JSON file of extra catalogue entries.
pub const EXTRA_ENV: &str = "K2_CATALOGUE_EXTRA";

/// The shipped entries plus the extra file's, and why the extra file was left out, if it was.
struct Catalogue {
    models: Vec<RecommendedModel>,
    problem: Option<String>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // Compiled in and checked by this module's tests, so a parse failure cannot ship.
        let shipped = serde_json::from_str(include_str!("recommended.json")).unwrap_or_default();
        let extra = std::env::var_os(EXTRA_ENV)
            .filter(|path| !path.is_empty())
            .map(|path| read_extra(Path::new(&path)));
        match extra {
            Some(Ok(extra)) => Catalogue {
                models: merged(shipped, extra),
                problem: None,
            },
            Some(Err(problem)) => {
                tracing::warn!("{problem}");
                Catalogue {
                    models: shipped,
                    problem: Some(problem),
                }
            }
            None => Catalogue {
                models: shipped,
                problem: None,
            },
        }
    })
}

fn read_extra(path: &Path) -> std::result::Result<Vec<RecommendedModel>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{EXTRA_ENV}: cannot read {} ({e}); showing the shipped catalogue only",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{EXTRA_ENV}: {} is not a list of catalogue entries ({e}); showing the shipped \
             catalogue only",
            path.display()
        )
    })
}

/// `shipped` with each of `extra` replacing the entry of its name, or added at the end.
fn merged(
    mut shipped: Vec<RecommendedModel>,
    extra: Vec<RecommendedModel>,
) -> Vec<RecommendedModel> {
    for entry in extra {
        match shipped
            .iter_mut()
            .find(|m| m.name.eq_ignore_ascii_case(&entry.name))
        {
            Some(same) => *same = entry,
            None => shipped.push(entry),
        }
    }
    shipped
}

/// The catalogue, in the order it is shown (smallest useful first; extra entries last).
pub fn recommended() -> &'static [RecommendedModel] {
    &catalogue().models
}

/// Why the `K2_CATALOGUE_EXTRA` file was left out, for the user to see.
pub fn catalogue_problem() -> Option<&'static str> {
    catalogue().problem.as_deref()
}

/// The entry named `name` (case-insensitive).
pub fn find_recommended(name: &str) -> Option<&'static RecommendedModel> {
    recommended()
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name.trim()))
}

/// The memory a model can use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineMemory {
    pub ram_bytes: Option<u64>,
    /// The largest GPU's memory, where an NVIDIA GPU answers `nvidia-smi`.
    pub gpu_bytes: Option<u64>,
}

impl MachineMemory {
    pub fn detect() -> MachineMemory {
        MachineMemory {
            ram_bytes: total_ram(),
            gpu_bytes: largest_gpu(),
        }
    }
}

/// A catalogue entry with what it needs and whether that fits this machine: what
/// `k2 models recommended` prints and the Models view shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendedFit {
    #[serde(flatten)]
    pub model: RecommendedModel,
    pub ram_bytes: Option<u64>,
    pub ram_context_tokens: u64,
    /// `None` where the machine's memory or the model's size is unknown.
    pub fits: Option<bool>,
    /// Weights and cache within 90% of the GPU's memory; `None` without a GPU.
    pub fits_gpu: Option<bool>,
    /// The file can be downloaded from here (a repository and file are published).
    pub downloadable: bool,
}

/// Every entry of the catalogue measured against `machine`.
pub fn recommended_for(machine: MachineMemory) -> Vec<RecommendedFit> {
    recommended()
        .iter()
        .map(|model| {
            let ram_bytes = model.ram_bytes();
            let fits = ram_bytes
                .zip(machine.ram_bytes)
                .map(|(need, have)| need as f64 <= have as f64 * RAM_SHARE);
            let fits_gpu = ram_bytes
                .zip(machine.gpu_bytes)
                .map(|(need, have)| (need - PROCESS_ALLOWANCE_BYTES) as f64 <= have as f64 * 0.9);
            RecommendedFit {
                model: model.clone(),
                ram_bytes,
                ram_context_tokens: RAM_CONTEXT_TOKENS,
                fits,
                fits_gpu,
                downloadable: model.hf_file().is_some(),
            }
        })
        .collect()
}

fn total_ram() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn largest_gpu() -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .max()?;
    Some(mib << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_parses_and_names_the_models_the_tutor_recommends() {
        let names: Vec<&str> = recommended().iter().map(|m| m.name.as_str()).collect();
        for wanted in [
            "DeepSeek-R1-Distill-Qwen-1.5B",
            "DeepSeek-R1-Distill-Qwen-7B",
            "Qwen3-1.7B",
            "Qwen3-4B",
            "Qwen3-8B",
            "K2-Horizon-0.9B",
            "K2-Horizon-3.7B",
            "K2-Horizon-7B",
            "OpenMath-Nemotron-1.5B",
            "Qwen2.5-Math-1.5B-Instruct",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
    }

    #[test]
    fn every_entry_is_honest_about_what_is_confirmed() {
        for m in recommended() {
            let supported = crate::model::Architecture::parse(&m.family).is_some();
            assert!(supported, "{}: family {} does not load", m.name, m.family);
            assert!(!m.why.is_empty() && !m.sources.is_empty(), "{}", m.name);
            if let Some(hash) = &m.sha256 {
                assert!(
                    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{}: {hash}",
                    m.name
                );
            } else {
                assert!(
                    m.notes.iter().any(|n| n.contains("SHA-256 not confirmed")) || m.repo.is_none(),
                    "{}: an entry without a hash must say so",
                    m.name
                );
            }
            if m.repo.is_none() {
                assert!(
                    m.notes.iter().any(|n| n.contains("not downloadable")),
                    "{}",
                    m.name
                );
            }
            if !m.bytes_exact {
                assert!(m.bytes.is_none() || m.notes.iter().any(|n| n.contains("approximate")));
            }
        }
    }

    #[test]
    fn fit_follows_the_machine_s_memory() {
        let small = MachineMemory {
            ram_bytes: Some(4 << 30),
            gpu_bytes: None,
        };
        let big = MachineMemory {
            ram_bytes: Some(32 << 30),
            gpu_bytes: Some(80 << 30),
        };
        let fit = |machine, name: &str| {
            recommended_for(machine)
                .into_iter()
                .find(|f| f.model.name == name)
                .unwrap()
        };
        // 1.1 GB of weights, 0.47 GB of f32 cache at 8K, 0.5 GB allowance: 2.1 GB of 4 GB.
        let r1 = fit(small, "DeepSeek-R1-Distill-Qwen-1.5B");
        assert_eq!(
            r1.ram_bytes,
            Some(1_117_320_800 + 469_762_048 + (512 << 20))
        );
        assert_eq!(r1.fits, Some(true));
        assert_eq!(r1.fits_gpu, None);
        assert_eq!(fit(small, "Qwen3-8B").fits, Some(false));
        assert_eq!(fit(big, "Qwen3-8B").fits, Some(true));
        assert_eq!(fit(big, "Qwen3-8B").fits_gpu, Some(true));
        let unknown = MachineMemory {
            ram_bytes: None,
            gpu_bytes: None,
        };
        assert_eq!(fit(unknown, "Qwen3-8B").fits, None);
        let nemotron = fit(big, "OpenMath-Nemotron-1.5B");
        assert!(!nemotron.downloadable && nemotron.fits.is_none());
    }

    #[test]
    fn extra_entries_replace_those_of_their_name_and_the_rest_are_added() {
        let shipped: Vec<RecommendedModel> =
            serde_json::from_str(include_str!("recommended.json")).unwrap();
        let mut replaced = shipped[0].clone();
        replaced.name = replaced.name.to_uppercase();
        replaced.why = "a lab's mirror".into();
        let mut added = shipped[1].clone();
        added.name = "Lab-Model".into();
        let all = merged(shipped.clone(), vec![replaced.clone(), added.clone()]);
        assert_eq!(all.len(), shipped.len() + 1);
        assert_eq!(all[0], replaced);
        assert_eq!(all.last(), Some(&added));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.json");
        std::fs::write(&path, serde_json::to_string(&[&added]).unwrap()).unwrap();
        assert_eq!(read_extra(&path).unwrap(), vec![added]);
        std::fs::write(&path, "[{\"name\": \"half an entry\"}]").unwrap();
        let problem = read_extra(&path).unwrap_err();
        assert!(
            problem.contains("extra.json is not a list of catalogue entries"),
            "{problem}"
        );
        let problem = read_extra(&dir.path().join("missing.json")).unwrap_err();
        assert!(problem.contains("cannot read"), "{problem}");
    }

    #[test]
    fn a_model_is_found_by_name_whatever_the_case() {
        let m = find_recommended(" qwen3-4b ").unwrap();
        assert_eq!(m.installed_name(), Some("Qwen3-4B-Q4_K_M.gguf"));
        assert_eq!(m.hf_file().unwrap().sha256.as_deref(), m.sha256.as_deref());
        assert!(find_recommended("gpt-5").is_none());
    }
}
