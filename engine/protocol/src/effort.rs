//! Reasoning effort: how long a reasoning model may think before it answers. One setting for
//! every family; the engine maps it to what the loaded model understands (K2 Horizon's three
//! think tags, Qwen3's thinking switch, or a thinking-token budget for the others).

use serde::{Deserialize, Serialize};

/// `low`, `medium` or `high`, as OpenAI's `reasoning_effort` spells them. A run without one
/// uses the model's own default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    pub const ALL: [Effort; 3] = [Effort::Low, Effort::Medium, Effort::High];

    /// The name used on the command line, on the wire and in templates.
    pub fn name(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// The thinking-token budget that stands for this effort on models without an effort
    /// control of their own (R1 distills, QwQ...): after this many reasoning tokens the think
    /// block is closed and the model answers. `None`: think as long as it wants.
    ///
    /// The numbers follow the length of typical traces: 1K tokens is a short check of a school
    /// problem, 4K a worked competition problem; high effort leaves the model alone.
    pub fn thinking_budget(self) -> Option<usize> {
        match self {
            Effort::Low => Some(1024),
            Effort::Medium => Some(4096),
            Effort::High => None,
        }
    }
}

impl std::fmt::Display for Effort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Effort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Effort::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("unknown effort `{s}` (use low, medium or high)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for effort in Effort::ALL {
            assert_eq!(effort.name().parse::<Effort>(), Ok(effort));
            let json = serde_json::to_string(&effort).unwrap();
            assert_eq!(json, format!("\"{}\"", effort.name()));
            assert_eq!(serde_json::from_str::<Effort>(&json).unwrap(), effort);
        }
        assert!("extreme".parse::<Effort>().is_err());
    }

    #[test]
    fn budgets_grow_with_effort_and_high_is_unbounded() {
        assert_eq!(Effort::Low.thinking_budget(), Some(1024));
        assert_eq!(Effort::Medium.thinking_budget(), Some(4096));
        assert_eq!(Effort::High.thinking_budget(), None);
    }
}
