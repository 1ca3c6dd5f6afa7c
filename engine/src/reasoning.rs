//! A run's reasoning effort as the loaded model understands it. The family is read from the
//! chat template ([`ReasoningControls`]), not from the architecture, so a new checkpoint of a
//! known family needs nothing here:
//!
//! - a template that reads `reasoning_effort` (K2 Horizon) gets it, and picks its think tag;
//! - a template that writes K2 Horizon's tags but does not read the kwarg (an older one) gets
//!   the effort's tag written at the end of the prompt;
//! - a template with Qwen3's `enable_thinking` switch: off for low effort, on otherwise, with
//!   the effort's thinking budget for medium (else medium would be high);
//! - any other model (R1 distills, QwQ...): the effort's thinking budget
//!   ([`Effort::thinking_budget`]), enforced by the decode loop's budget forcing.

use k2_protocol::Effort;
use k2_scaffold::think::{k2_horizon_tags, prompt_opens_reasoning};

use crate::chat::{ReasoningControls, TemplateOptions};

/// How one request's effort is applied to the loaded model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EffortPlan {
    /// Kwargs for the chat template.
    pub template: TemplateOptions,
    /// An opening think tag to end the rendered prompt with.
    pub prefill: Option<&'static str>,
    /// Most reasoning tokens before the think block is closed for the model; `None`: no cap.
    pub thinking_budget: Option<usize>,
}

/// The plan for `effort` on a model whose template offers `controls`. No effort: the model's
/// defaults, untouched.
pub fn plan_effort(controls: ReasoningControls, effort: Option<Effort>) -> EffortPlan {
    let Some(effort) = effort else {
        return EffortPlan::default();
    };
    if controls.effort_kwarg {
        return EffortPlan {
            template: TemplateOptions {
                reasoning_effort: Some(effort),
                ..TemplateOptions::default()
            },
            ..EffortPlan::default()
        };
    }
    if controls.effort_tags {
        return EffortPlan {
            prefill: Some(k2_horizon_tags(effort).0),
            ..EffortPlan::default()
        };
    }
    if controls.thinking_switch {
        let thinking = effort != Effort::Low;
        return EffortPlan {
            template: TemplateOptions {
                enable_thinking: Some(thinking),
                ..TemplateOptions::default()
            },
            thinking_budget: if thinking {
                effort.thinking_budget()
            } else {
                None
            },
            ..EffortPlan::default()
        };
    }
    EffortPlan {
        thinking_budget: effort.thinking_budget(),
        ..EffortPlan::default()
    }
}

/// Ends `prompt` with the opening tag `tag`: in place of the opening tag the template wrote
/// there (its default effort), else after the prompt, followed by a newline as K2 Horizon's
/// template writes it.
pub fn prefill_think_tag(prompt: &mut String, tag: &str) {
    let end = prompt.trim_end().len();
    match prompt_opens_reasoning(prompt) {
        Some(written) => prompt.replace_range(end - written.len()..end, tag),
        None => {
            prompt.push_str(tag);
            prompt.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K2_HORIZON: ReasoningControls = ReasoningControls {
        thinking_switch: true,
        effort_kwarg: true,
        effort_tags: true,
    };
    const OLD_K2_HORIZON: ReasoningControls = ReasoningControls {
        thinking_switch: false,
        effort_kwarg: false,
        effort_tags: true,
    };
    const QWEN3: ReasoningControls = ReasoningControls {
        thinking_switch: true,
        effort_kwarg: false,
        effort_tags: false,
    };
    const R1_DISTILL: ReasoningControls = ReasoningControls {
        thinking_switch: false,
        effort_kwarg: false,
        effort_tags: false,
    };

    #[test]
    fn no_effort_leaves_every_model_at_its_default() {
        for controls in [K2_HORIZON, OLD_K2_HORIZON, QWEN3, R1_DISTILL] {
            assert_eq!(plan_effort(controls, None), EffortPlan::default());
        }
    }

    #[test]
    fn each_family_gets_its_own_control() {
        for effort in Effort::ALL {
            let k2 = plan_effort(K2_HORIZON, Some(effort));
            assert_eq!(k2.template.reasoning_effort, Some(effort));
            assert_eq!((k2.prefill, k2.thinking_budget), (None, None));

            let old = plan_effort(OLD_K2_HORIZON, Some(effort));
            assert_eq!(old.prefill, Some(k2_horizon_tags(effort).0));

            let r1 = plan_effort(R1_DISTILL, Some(effort));
            assert_eq!(r1.template, TemplateOptions::default());
            assert_eq!(r1.thinking_budget, effort.thinking_budget());
        }
        let qwen3 = |e| plan_effort(QWEN3, Some(e));
        assert_eq!(qwen3(Effort::Low).template.enable_thinking, Some(false));
        assert_eq!(qwen3(Effort::Low).thinking_budget, None);
        assert_eq!(qwen3(Effort::Medium).template.enable_thinking, Some(true));
        assert_eq!(qwen3(Effort::Medium).thinking_budget, Some(4096));
        assert_eq!(qwen3(Effort::High).template.enable_thinking, Some(true));
        assert_eq!(qwen3(Effort::High).thinking_budget, None);
    }

    #[test]
    fn the_prefilled_tag_replaces_the_templates_or_is_appended() {
        let mut prompt = "<|ifm|im_start|>assistant\n<ifm|think>\n".to_owned();
        prefill_think_tag(&mut prompt, "<ifm|think_faster>");
        assert_eq!(prompt, "<|ifm|im_start|>assistant\n<ifm|think_faster>\n");

        let mut prompt = "<|ifm|im_start|>assistant\n".to_owned();
        prefill_think_tag(&mut prompt, "<ifm|think_fast>");
        assert_eq!(prompt, "<|ifm|im_start|>assistant\n<ifm|think_fast>\n");
    }
}
