//! What a run is asked to do. Defaults follow K2-Think's evaluation settings: three candidates
//! sampled at temperature 1.0, top-p 0.95, each with its own plan-informed prompt.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The problem statement (may contain LaTeX).
    pub problem: String,
    #[serde(default)]
    pub settings: RunSettings,
    /// The session the run is filed under in the history ("Homework 3", "Olympiad
    /// practice"); the front end's own session when absent or blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl RunRequest {
    pub fn new(problem: impl Into<String>) -> Self {
        RunRequest {
            problem: problem.into(),
            settings: RunSettings::default(),
            session: None,
        }
    }

    /// The session title to file this run under: the request's own (trimmed, at most
    /// [`SESSION_TITLE_MAX`] characters) or `default` when it names none.
    pub fn session_or<'a>(&'a self, default: &'a str) -> std::borrow::Cow<'a, str> {
        match self
            .session
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(title) if title.chars().count() > SESSION_TITLE_MAX => {
                std::borrow::Cow::Owned(title.chars().take(SESSION_TITLE_MAX).collect())
            }
            Some(title) => std::borrow::Cow::Borrowed(title),
            None => std::borrow::Cow::Borrowed(default),
        }
    }
}

/// The longest session title kept, in characters.
pub const SESSION_TITLE_MAX: usize = 100;

/// The most candidates a run may ask for. They decode as one batch whose key/value cache
/// grows with every row (a thousand rows of a 135M model reached 12 GB), and past a few dozen
/// more candidates no longer change which answer wins the vote.
pub const MAX_CANDIDATES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// Number of candidate solutions (best-of-N).
    pub candidates: usize,
    /// Plan before solving.
    pub plan: bool,
    pub selection: Selection,
    /// Sampling of the candidates.
    pub sampling: SamplingSettings,
    /// Longest plan, in tokens.
    pub plan_max_tokens: usize,
    /// Most tokens a candidate may spend inside its think block; then the block is closed
    /// for it and it is asked for its answer (budget forcing). `None`: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<usize>,
    /// End a candidate (and the plan, and a judge reply) whose text degenerated into one
    /// span repeated over and over.
    pub loop_guard: bool,
    /// How long the solver thinks; `None` (absent) is the model's own default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<crate::Effort>,
    /// Write the student's hint ladder after the answer is chosen (student mode).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hints: bool,
    /// Student mode on a classroom server: the server keeps candidates, the plan and the
    /// answer from the student until they ask for the solution (issue 29).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub student: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            candidates: 3,
            plan: true,
            selection: Selection::VoteThenJudge,
            sampling: SamplingSettings::default(),
            plan_max_tokens: 384,
            thinking_budget: None,
            loop_guard: true,
            effort: None,
            hints: false,
            student: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingSettings {
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 0 disables.
    pub min_p: f32,
    /// Candidate i samples with a seed derived from this one and i.
    pub seed: u64,
    pub max_tokens: usize,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        SamplingSettings {
            temperature: 1.0,
            top_p: 0.95,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
            max_tokens: 2048,
        }
    }
}

/// How the final answer is chosen among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Pairwise judge, champion against challenger.
    Judge,
    /// Majority of mathematically equivalent answers.
    Vote,
    /// Vote, and ask the judge only when the vote is split.
    #[default]
    #[serde(rename = "vote+judge")]
    VoteThenJudge,
}

impl Selection {
    /// The name used on the command line and in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Judge => "judge",
            Selection::Vote => "vote",
            Selection::VoteThenJudge => "vote+judge",
        }
    }
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Selection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "judge" => Ok(Selection::Judge),
            "vote" => Ok(Selection::Vote),
            "vote+judge" => Ok(Selection::VoteThenJudge),
            other => Err(format!(
                "unknown selection `{other}` (use judge, vote or vote+judge)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn student_mode_is_sent_only_when_on_and_read_as_off_when_absent() {
        let mut settings = RunSettings::default();
        let off = serde_json::to_value(&settings).unwrap();
        assert!(off.get("student").is_none(), "{off}");
        settings.student = true;
        settings.hints = true;
        let on = serde_json::to_value(&settings).unwrap();
        assert_eq!(on["student"], json!(true), "{on}");
        assert_eq!(serde_json::from_value::<RunSettings>(on).unwrap(), settings);
        // Requests written before the field existed (and by other clients) are not student runs.
        let old: RunRequest =
            serde_json::from_value(json!({"problem": "1+1", "settings": {"hints": true}})).unwrap();
        assert!(!old.settings.student && old.settings.hints);
        let asked: RunRequest =
            serde_json::from_value(json!({"problem": "1+1", "settings": {"student": true}}))
                .unwrap();
        assert!(asked.settings.student);
        // Not a boolean: refused with a message, never taken as on or off.
        let wrong = serde_json::from_value::<RunRequest>(
            json!({"problem": "1+1", "settings": {"student": "yes"}}),
        )
        .unwrap_err();
        assert!(wrong.to_string().contains("invalid type"), "{wrong}");
    }
}
