//! The desktop app's settings, one layer of them (the user's file, or the lab administrator's
//! machine-wide one): shared by the app, which reads, overlays and writes the files, and the UI,
//! which shows and edits them in the Models view.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One layer of settings; `None` leaves the key to the layer below (or the default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
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
    /// The most rungs of the hint ladder a student may open, the worked solution counting as
    /// the last one (`0`: no hints); unset: all of them.
    pub hint_levels: Option<u32>,
}

/// The keys of [`AppConfig`], in the order the Models view shows them.
pub const CONFIG_KEYS: [&str; 9] = [
    "solver",
    "planner",
    "draft",
    "device",
    "remote_url",
    "remote_token",
    "models_dir",
    "student_mode",
    "hint_levels",
];

impl AppConfig {
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
            self.hint_levels.is_some(),
        ];
        CONFIG_KEYS
            .iter()
            .zip(set)
            .filter_map(|(key, set)| set.then_some(*key))
            .collect()
    }

    /// This layer with `over`'s keys on top.
    pub fn overlaid(&self, over: &AppConfig) -> AppConfig {
        AppConfig {
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
            hint_levels: over.hint_levels.or(self.hint_levels),
        }
    }

    /// Empty strings mean "not set" (a cleared field in the form).
    pub fn normalized(mut self) -> AppConfig {
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

    /// A key's value as text (`None`: not set).
    pub fn value_of(&self, key: &str) -> Option<String> {
        match key {
            "solver" => self.solver.clone(),
            "planner" => self.planner.clone(),
            "draft" => self.draft.clone(),
            "device" => self.device.clone(),
            "remote_url" => self.remote_url.clone(),
            "remote_token" => self.remote_token.clone(),
            "models_dir" => self.models_dir.as_ref().map(|d| d.display().to_string()),
            "student_mode" => self.student_mode.map(|s| s.to_string()),
            "hint_levels" => self.hint_levels.map(|n| n.to_string()),
            _ => None,
        }
    }
}
