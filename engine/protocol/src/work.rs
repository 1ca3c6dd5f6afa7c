//! "Check my work": the verdict on a student's own worked solution, computed by
//! `k2_answer::work` (the one definition), printed by `k2 solve --work`, stored by the history's
//! `check_work` and shown by the UI. Serialized as
//! `{"steps": 4, "first_wrong": {"step": 3, ...}, "final_answer": "right", "basis": "unanimous",
//! "summary": "..."}`.
//!
//! No field ever holds a correct value: the student's own text, what kind of mistake it is, and
//! words that say where to look.

use serde::{Deserialize, Serialize};

use crate::{CheckBasis, CheckVerdict};

/// What is wrong at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkIssueKind {
    /// An equation whose two sides both evaluate to numbers, and they differ.
    Arithmetic,
    /// A result that appears nowhere in the tutor's verified solution nor in the problem.
    DiffersFromSolution,
    /// Every step holds, but the last result is not the verified answer.
    FinalAnswer,
    /// The verifier model doubts the step where numbers could not decide (a claim without a
    /// number, a wrong method with no wrong number). Always [`WorkCertainty::Unsure`]: a
    /// model's opinion, never verified. Only ever in [`WorkCheck::model_doubt`], never in
    /// `first_wrong` (the store's `kind` column keeps the number checker's kinds).
    ModelDoubt,
}

/// How sure the tutor is that the step is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkCertainty {
    /// Decided by exact arithmetic, or against an answer the tutor has verified.
    Sure,
    /// Only off the verified path: another correct route could produce it.
    Unsure,
}

/// The first step found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrongStep {
    /// 1-based, in the order the student wrote the steps.
    pub step: usize,
    /// The step as the student wrote it (untrusted: escape it when shown).
    pub text: String,
    pub kind: WorkIssueKind,
    pub certainty: WorkCertainty,
    /// For the student: where to look, never the correct value.
    pub message: String,
}

/// A checked piece of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkCheck {
    /// How many steps were read.
    pub steps: usize,
    /// The first wrong step, or `None` when none was found.
    pub first_wrong: Option<WrongStep>,
    /// The work's last result against the verified answer (`right`/`wrong`), `unsure` when
    /// there is no verified answer or no final result could be read.
    pub final_answer: CheckVerdict,
    /// What the steps were checked against: a worked solution from the answer key
    /// (`answer_key`), the run's solution the tutor is confident in (`unanimous`,
    /// `verifier`), or nothing but arithmetic (`unsure`).
    pub basis: CheckBasis,
    /// One paragraph for the student.
    pub summary: String,
    /// Whether the verifier model was asked, which happens only where the numbers could not
    /// decide (`k2_answer::work::needs_model_review`) and a model was at hand.
    #[serde(default)]
    pub reviewed_by_model: bool,
    /// The step the verifier model doubts (kind [`WorkIssueKind::ModelDoubt`], certainty
    /// unsure), with its words of what to re-check; `None` when it was not asked or found
    /// nothing. Kept apart from `first_wrong`: numbers decide that one.
    #[serde(default)]
    pub model_doubt: Option<WrongStep>,
}

impl WorkIssueKind {
    pub const ALL: [WorkIssueKind; 4] = [
        WorkIssueKind::Arithmetic,
        WorkIssueKind::DiffersFromSolution,
        WorkIssueKind::FinalAnswer,
        WorkIssueKind::ModelDoubt,
    ];

    /// The serialized name (`"arithmetic"`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkIssueKind::Arithmetic => "arithmetic",
            WorkIssueKind::DiffersFromSolution => "differs_from_solution",
            WorkIssueKind::FinalAnswer => "final_answer",
            WorkIssueKind::ModelDoubt => "model_doubt",
        }
    }

    pub fn parse(text: &str) -> Option<WorkIssueKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// For teachers: "an arithmetic mistake".
    pub fn describe(self) -> &'static str {
        match self {
            WorkIssueKind::Arithmetic => "an arithmetic mistake",
            WorkIssueKind::DiffersFromSolution => "a result off the verified solution",
            WorkIssueKind::FinalAnswer => "a final answer that is not the verified one",
            WorkIssueKind::ModelDoubt => {
                "a step the verifier model doubts (its opinion, not verified)"
            }
        }
    }
}

impl WorkCheck {
    /// The verdict in a few words, as the student's record tells it: "wrong at step 2",
    /// "maybe wrong at step 2" (unsure), or "no wrong step found, final answer right".
    pub fn verdict(&self) -> String {
        match &self.first_wrong {
            Some(w) if w.certainty == WorkCertainty::Sure => format!("wrong at step {}", w.step),
            Some(w) => format!("maybe wrong at step {}", w.step),
            None => match &self.model_doubt {
                Some(d) => format!(
                    "maybe wrong at step {} (the verifier model's opinion), final answer {}",
                    d.step, self.final_answer
                ),
                None => format!("no wrong step found, final answer {}", self.final_answer),
            },
        }
    }
}

impl WorkCertainty {
    /// The serialized name (`"sure"`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkCertainty::Sure => "sure",
            WorkCertainty::Unsure => "unsure",
        }
    }

    pub fn parse(text: &str) -> Option<WorkCertainty> {
        [WorkCertainty::Sure, WorkCertainty::Unsure]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_check_serializes_with_snake_case_names_and_round_trips() {
        let check = WorkCheck {
            steps: 2,
            first_wrong: Some(WrongStep {
                step: 2,
                text: "9 * 2 = 19".into(),
                kind: WorkIssueKind::DiffersFromSolution,
                certainty: WorkCertainty::Unsure,
                message: "Step 2: …".into(),
            }),
            final_answer: CheckVerdict::Wrong,
            basis: CheckBasis::Unanimous,
            summary: "Step 2: …".into(),
            reviewed_by_model: true,
            model_doubt: Some(WrongStep {
                step: 1,
                text: "Half of them left".into(),
                kind: WorkIssueKind::ModelDoubt,
                certainty: WorkCertainty::Unsure,
                message: "Step 1: check this step again.".into(),
            }),
        };
        let value = serde_json::to_value(&check).unwrap();
        assert_eq!(value["first_wrong"]["kind"], json!("differs_from_solution"));
        assert_eq!(value["first_wrong"]["certainty"], json!("unsure"));
        assert_eq!(value["basis"], json!("unanimous"));
        assert_eq!(value["model_doubt"]["kind"], json!("model_doubt"));
        assert_eq!(serde_json::from_value::<WorkCheck>(value).unwrap(), check);
        // A check kept before the verifier model existed reads as not reviewed.
        let old = json!({"steps": 1, "first_wrong": null, "final_answer": "unsure",
            "basis": "unsure", "summary": "…"});
        let old: WorkCheck = serde_json::from_value(old).unwrap();
        assert!(!old.reviewed_by_model && old.model_doubt.is_none());
        assert!(WorkIssueKind::ModelDoubt
            .describe()
            .contains("not verified"));
        for kind in WorkIssueKind::ALL {
            assert_eq!(WorkIssueKind::parse(kind.as_str()), Some(kind));
            assert_eq!(json!(kind), json!(kind.as_str()));
        }
        assert_eq!(WorkCertainty::parse("sure"), Some(WorkCertainty::Sure));
        assert_eq!(WorkCertainty::parse("maybe"), None);
    }
}
