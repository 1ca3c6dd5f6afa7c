//! The desktop app's configuration: what the user chose in the Models view
//! (`~/.config/k2-tutor/config.toml`), under what a lab administrator set for the whole machine
//! (`/etc/k2-tutor/config.toml`). Every key the system file sets wins and is locked: the app
//! shows it and a student cannot change it (a preset remote server and token, a shared
//! read-only models folder, student mode).
//!
//! `K2_CONFIG` and `K2_SYSTEM_CONFIG` point elsewhere (tests, portable installs).

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use k2_protocol::AppConfig as Config;

pub const SYSTEM_PATH: &str = "/etc/k2-tutor/config.toml";

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
pub fn write(config: &Config, path: &Path) -> Result<(), String> {
    let text = toml::to_string_pretty(config).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, text)
        .and_then(|_| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot save {}: {e}", path.display()))
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
            read(path).unwrap_or_else(|e| {
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
                let asked = wanted.value_of(key);
                asked.is_some() && asked != self.system.value_of(key)
            })
            .collect();
        if !changed_locked.is_empty() {
            return Err(format!(
                "{} set by the administrator in {} and cannot be changed here",
                changed_locked.join(", "),
                self.system_path.display()
            ));
        }
        write(&wanted, &self.user_path)?;
        self.user = wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k2_protocol::CONFIG_KEYS as KEYS;

    fn layers(system: &str) -> (tempfile::TempDir, Layers) {
        let dir = tempfile::tempdir().unwrap();
        let system_path = dir.path().join("system.toml");
        std::fs::write(&system_path, system).unwrap();
        let layers = Layers {
            user: Config::default(),
            system: read(&system_path).unwrap(),
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
            read(&layers.user_path).unwrap().solver.as_deref(),
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
        let error = read(&path).unwrap_err();
        assert!(
            error.contains("config.toml is not a valid configuration"),
            "{error}"
        );
        assert!(error.contains("studnet_mode"), "{error}");
        assert_eq!(
            read(&dir.path().join("missing.toml")).unwrap(),
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
