//! The verdict on a student's answer and what it rests on. Computed by `k2_answer::check` (the
//! one definition of the check, shared by the command line, the history and the wasm UI),
//! stored with each attempt, and serialized as `{"verdict": "right", "basis": "unanimous"}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether the student's answer is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    Right,
    Wrong,
    /// Nothing trustworthy to compare with: no known answer, and the tutor's own solutions
    /// are not confident. Never shown as "wrong".
    Unsure,
}

/// What the verdict was checked against, most trustworthy first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckBasis {
    /// The problem's known answer: an imported problem set's `answer`, or one given with the
    /// run (`k2 solve --answer-key`).
    AnswerKey,
    /// A teacher's correction of the run's answer.
    Teacher,
    /// The run's answer, on which every candidate that finished agreed (two or more of them).
    Unanimous,
    /// The run's answer, chosen by the judge with every comparison decided the same way in
    /// both orders.
    Verifier,
    /// Nothing to check against.
    Unsure,
}

/// A checked attempt: `{"verdict": …, "basis": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptCheck {
    pub verdict: CheckVerdict,
    pub basis: CheckBasis,
}

impl CheckVerdict {
    pub const ALL: [CheckVerdict; 3] = [
        CheckVerdict::Right,
        CheckVerdict::Wrong,
        CheckVerdict::Unsure,
    ];

    /// The serialized name (`"right"`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckVerdict::Right => "right",
            CheckVerdict::Wrong => "wrong",
            CheckVerdict::Unsure => "unsure",
        }
    }

    pub fn parse(text: &str) -> Option<CheckVerdict> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl CheckBasis {
    pub const ALL: [CheckBasis; 5] = [
        CheckBasis::AnswerKey,
        CheckBasis::Teacher,
        CheckBasis::Unanimous,
        CheckBasis::Verifier,
        CheckBasis::Unsure,
    ];

    /// The serialized name (`"answer_key"`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckBasis::AnswerKey => "answer_key",
            CheckBasis::Teacher => "teacher",
            CheckBasis::Unanimous => "unanimous",
            CheckBasis::Verifier => "verifier",
            CheckBasis::Unsure => "unsure",
        }
    }

    pub fn parse(text: &str) -> Option<CheckBasis> {
        Self::ALL.into_iter().find(|b| b.as_str() == text)
    }

    /// What the check rested on, for people: "the answer key".
    pub fn describe(self) -> &'static str {
        match self {
            CheckBasis::AnswerKey => "the answer key",
            CheckBasis::Teacher => "your teacher's correction",
            CheckBasis::Unanimous => "the tutor's solutions, which all agree",
            CheckBasis::Verifier => {
                "the tutor's solution chosen by its verifier, the same way in both orders"
            }
            CheckBasis::Unsure => "nothing certain",
        }
    }
}

impl AttemptCheck {
    /// Nothing trustworthy to compare with.
    pub const UNSURE: AttemptCheck = AttemptCheck {
        verdict: CheckVerdict::Unsure,
        basis: CheckBasis::Unsure,
    };

    /// The verdict in plain words, with its basis; never reveals the answer.
    pub fn message(&self) -> String {
        match self.verdict {
            CheckVerdict::Right => format!("Right (checked against {}).", self.basis.describe()),
            CheckVerdict::Wrong => format!(
                "Not right (checked against {}). Look again and retry.",
                self.basis.describe()
            ),
            CheckVerdict::Unsure => "Unsure: the tutor's solutions disagree (or it is not \
                                     confident in them), so it cannot check your answer: ask \
                                     your teacher or compare with the worked solution."
                .to_owned(),
        }
    }
}

impl fmt::Display for CheckVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CheckBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_names_are_the_contracts() {
        let check = AttemptCheck {
            verdict: CheckVerdict::Right,
            basis: CheckBasis::AnswerKey,
        };
        assert_eq!(
            serde_json::to_string(&check).unwrap(),
            r#"{"verdict":"right","basis":"answer_key"}"#
        );
        for v in CheckVerdict::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
            assert_eq!(CheckVerdict::parse(v.as_str()), Some(v));
        }
        for b in CheckBasis::ALL {
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
            assert_eq!(CheckBasis::parse(b.as_str()), Some(b));
        }
        let names: Vec<&str> = CheckBasis::ALL.iter().map(|b| b.as_str()).collect();
        assert_eq!(
            names,
            ["answer_key", "teacher", "unanimous", "verifier", "unsure"]
        );
    }

    #[test]
    fn unsure_is_said_plainly_and_never_as_wrong() {
        let text = AttemptCheck::UNSURE.message();
        assert!(text.starts_with("Unsure"), "{text}");
        assert!(text.contains("ask your teacher"), "{text}");
        assert!(!text.to_lowercase().contains("wrong"));
        assert!(!text.to_lowercase().contains("not right"));
    }
}
