//! The desktop app's configuration: what the user chose in the Models view
//! (`~/.config/k2-tutor/config.toml`), under what a lab administrator set for the whole machine
//! (`/etc/k2-tutor/config.toml`). Every key the system file sets wins and is locked: the app
//! shows it and a student cannot change it (a preset remote server and token, a shared
//! read-only models folder, student mode).
//!
//! `K2_CONFIG` and `K2_SYSTEM_CONFIG` point elsewhere (tests, portable installs).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SYSTEM_PATH: &str = "/etc/k2-tutor/config.toml";

/// One layer of settings; `None` leaves the key to the layer below (or the default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The solver: an installed model's name or a path.
    pub solver: Option<String>,
    /// The planner and judge; the solver itself when unset and the default is missing.
    pub planner: Option<String>,
    /// A draft model for speculative decoding of the solver (same tokenizer family).
    pub draft: Option<String>,
    /// `auto`, `cpu`, `cuda` or `metal`.
    pub device: Option<String>,
    /// A classroom server (`k2 serve` or any OpenAI-compatible one) instead of local models.
    pub remote_url: Option<String>,
    pub remote_token: Option<String>,
    /// Where models are installed (lab machines: a shared, read-only folder).
    pub models_dir: Option<PathBuf>,
    /// Hints one at a time and the solution only on request.
    pub student_mode: Option<bool>,
}

/// The keys of [`Config`], in the order the Models view shows them.
pub const KEYS: [&str; 8] = [
    "solver",
    "planner",
    "draft",
    "device",
    "remote_url",
    "remote_token",
    "models_dir",
    "student_mode",
];

impl Config {
    /// Reads `path`; a missing file is an empty layer, a malformed one an error saying where.
    pub fn read(path: &Path) -> Result<Config, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| format!("{} is not a valid configuration: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes `path` whole through a temporary file, so a crash never leaves half a file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let partial = path.with_extension("toml.partial");
        std::fs::write(&partial, text)
            .and_then(|_| std::fs::rename(&partial, path))
            .map_err(|e| format!("cannot save {}: {e}", path.display()))
    }

    /// Which keys are set in this layer.
    pub fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            self.solver.is_some(),
            self.planner.is_some(),
            self.draft.is_some(),
            self.device.is_some(),
            self.remote_url.is_some(),
            self.remote_token.is_some(),
            self.models_dir.is_some(),
            self.student_mode.is_some(),
        ];
        KEYS.iter()
            .zip(set)
            .filter_map(|(key, set)| set.then_some(*key))
            .collect()
    }

    /// This layer with `over`'s keys on top.
    pub fn overlaid(&self, over: &Config) -> Config {
        Config {
            solver: over.solver.clone().or_else(|| self.solver.clone()),
            planner: over.planner.clone().or_else(|| self.planner.clone()),
            draft: over.draft.clone().or_else(|| self.draft.clone()),
            device: over.device.clone().or_else(|| self.device.clone()),
            remote_url: over.remote_url.clone().or_else(|| self.remote_url.clone()),
            remote_token: over
                .remote_token
                .clone()
                .or_else(|| self.remote_token.clone()),
            models_dir: over.models_dir.clone().or_else(|| self.models_dir.clone()),
            student_mode: over.student_mode.or(self.student_mode),
        }
    }

    /// Empty strings mean "not set" (a cleared field in the form).
    fn normalized(mut self) -> Config {
        for value in [
            &mut self.solver,
            &mut self.planner,
            &mut self.draft,
            &mut self.device,
            &mut self.remote_url,
            &mut self.remote_token,
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        if self
            .models_dir
            .as_deref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            self.models_dir = None;
        }
        self
    }
}

/// The two files and what they add up to.
#[derive(Debug, Clone, Serialize)]
pub struct Layers {
    pub user: Config,
    pub system: Config,
    pub user_path: PathBuf,
    pub system_path: PathBuf,
    /// Files that could not be read (left out, and shown in the Models view).
    pub problems: Vec<String>,
}

impl Layers {
    /// Reads both files. One that cannot be read is left out and reported, never fatal: the
    /// app still opens and says what to fix.
    pub fn load() -> Layers {
        let (user_path, system_path) = Self::paths();
        let mut problems = Vec::new();
        let mut read = |path: &Path| {
            Config::read(path).unwrap_or_else(|e| {
                tracing::error!("{e}");
                problems.push(e);
                Config::default()
            })
        };
        let (user, system) = (read(&user_path), read(&system_path));
        Layers {
            user,
            system,
            user_path,
            system_path,
            problems,
        }
    }

    fn paths() -> (PathBuf, PathBuf) {
        let user_path = std::env::var_os("K2_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                dirs::config_dir()
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("k2-tutor")
                    .join("config.toml")
            });
        let system_path = std::env::var_os("K2_SYSTEM_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SYSTEM_PATH));
        (user_path, system_path)
    }

    /// What is in force: the user's choices under the system's.
    pub fn effective(&self) -> Config {
        self.user.overlaid(&self.system)
    }

    /// The keys the system file fixes.
    pub fn locked(&self) -> Vec<&'static str> {
        self.system.set_keys()
    }

    /// Keeps `wanted` as the user's choices. Refused when it changes a locked key.
    pub fn save_user(&mut self, wanted: Config) -> Result<(), String> {
        let wanted = wanted.normalized();
        // Sending a locked key back unchanged is fine; changing it is not.
        let changed_locked: Vec<&str> = self
            .locked()
            .into_iter()
            .filter(|key| {
                let asked = value_of(&wanted, key);
                asked.is_some() && asked != value_of(&self.system, key)
            })
            .collect();
        if !changed_locked.is_empty() {
            return Err(format!(
                "{} set by the administrator in {} and cannot be changed here",
                changed_locked.join(", "),
                self.system_path.display()
            ));
        }
        wanted.write(&self.user_path)?;
        self.user = wanted;
        Ok(())
    }
}

fn value_of(config: &Config, key: &str) -> Option<String> {
    match key {
        "solver" => config.solver.clone(),
        "planner" => config.planner.clone(),
        "draft" => config.draft.clone(),
        "device" => config.device.clone(),
        "remote_url" => config.remote_url.clone(),
        "remote_token" => config.remote_token.clone(),
        "models_dir" => config.models_dir.as_ref().map(|d| d.display().to_string()),
        "student_mode" => config.student_mode.map(|s| s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(system: &str) -> (tempfile::TempDir, Layers) {
        let dir = tempfile::tempdir().unwrap();
        let system_path = dir.path().join("system.toml");
        std::fs::write(&system_path, system).unwrap();
        let layers = Layers {
            user: Config::default(),
            system: Config::read(&system_path).unwrap(),
            user_path: dir.path().join("user/config.toml"),
            system_path,
            problems: Vec::new(),
        };
        (dir, layers)
    }

    #[test]
    fn the_system_file_wins_and_locks_its_keys() {
        let (_dir, mut layers) =
            layers("remote_url = \"http://lab:8000\"\nremote_token = \"t\"\nstudent_mode = true\n");
        assert_eq!(
            layers.locked(),
            ["remote_url", "remote_token", "student_mode"]
        );
        let mine = Config {
            solver: Some("qwen".into()),
            student_mode: Some(false),
            ..Config::default()
        };
        let refused = layers.save_user(mine).unwrap_err();
        assert!(
            refused.contains("student_mode set by the administrator"),
            "{refused}"
        );
        // Unlocked keys are kept, and the file reads back the same.
        let mine = Config {
            solver: Some("qwen".into()),
            planner: Some("".into()),
            ..Config::default()
        };
        layers.save_user(mine).unwrap();
        assert_eq!(
            Config::read(&layers.user_path).unwrap().solver.as_deref(),
            Some("qwen")
        );
        assert_eq!(layers.user.planner, None, "an empty field is unset");
        let effective = layers.effective();
        assert_eq!(effective.student_mode, Some(true));
        assert_eq!(effective.remote_url.as_deref(), Some("http://lab:8000"));
        assert_eq!(effective.solver.as_deref(), Some("qwen"));
    }

    #[test]
    fn a_malformed_or_unknown_key_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "studnet_mode = true\n").unwrap();
        let error = Config::read(&path).unwrap_err();
        assert!(
            error.contains("config.toml is not a valid configuration"),
            "{error}"
        );
        assert!(error.contains("studnet_mode"), "{error}");
        assert_eq!(
            Config::read(&dir.path().join("missing.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_shipped_example_names_every_key_and_parses_once_uncommented() {
        let example = include_str!("../../assets/config.toml.example");
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| line.contains(" = "))
            .map(|line| format!("{line}\n"))
            .collect();
        let config: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(config.set_keys(), KEYS);
        // As shipped (all commented out) it sets nothing.
        assert_eq!(
            toml::from_str::<Config>(example).unwrap(),
            Config::default()
        );
    }
}
