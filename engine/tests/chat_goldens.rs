//! Real reasoning models' chat templates (Qwen3, QwQ, Qwen3.5, DeepSeek-R1 distill) and a K2-Horizon-
//! style one with `{% generation %}` markers, rendered with thinking on and off and at every
//! effort, compared byte for byte with Python's Jinja2 (`fixtures/chat_templates/goldens.json`,
//! written by `make_goldens.py` there).

use std::path::PathBuf;

use k2_engine::chat::{ChatMessage, ChatTemplate, ReasoningControls, TemplateOptions};
use k2_engine::reasoning::{plan_effort, prefill_think_tag};
use k2_engine::EngineError;
use k2_protocol::Effort;
use k2_scaffold::think::{k2_horizon_tags, prompt_opens_reasoning};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn source(file: &str) -> String {
    std::fs::read_to_string(fixtures().join(file)).unwrap()
}

fn template(file: &str, bos: &str, eos: &str) -> ChatTemplate {
    ChatTemplate::new(source(file), bos, eos).unwrap()
}

fn qwen3() -> ChatTemplate {
    template("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>")
}

fn qwen35() -> ChatTemplate {
    template("Qwen-Qwen3.5-4B.jinja", "", "<|im_end|>")
}

fn r1_distill() -> ChatTemplate {
    template(
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
    )
}

fn k2_horizon() -> ChatTemplate {
    template(
        "k2-horizon-style.jinja",
        "<|ifm|begin_of_text|>",
        "<|ifm|endoftext|>",
    )
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().unwrap()
}

fn options(case: &Value) -> TemplateOptions {
    let options = &case["options"];
    TemplateOptions {
        enable_thinking: options["enable_thinking"].as_bool(),
        reasoning_effort: options["reasoning_effort"]
            .as_str()
            .map(|e| e.parse().unwrap()),
    }
}

#[test]
fn templates_render_exactly_as_jinja2_does() {
    let goldens: Vec<Value> =
        serde_json::from_str(&source("goldens.json")).expect("goldens.json parses");
    assert!(
        goldens.len() >= 50,
        "every template, conversation and option set"
    );
    for case in &goldens {
        let t = template(
            text(case, "template"),
            text(case, "bos_token"),
            text(case, "eos_token"),
        );
        let messages: Vec<ChatMessage> = serde_json::from_value(case["messages"].clone()).unwrap();
        let got = t
            .render_with(
                &messages,
                case["add_generation_prompt"].as_bool().unwrap(),
                &options(case),
            )
            .unwrap();
        assert_eq!(
            got,
            text(case, "expected"),
            "{} / {} / {}",
            text(case, "template"),
            text(case, "conversation"),
            case["options"]
        );
    }
}

#[test]
fn generation_markers_are_stripped_and_their_content_kept() {
    let source = source("k2-horizon-style.jinja");
    assert!(source.contains("{%- generation %}") && source.contains("{%- generation -%}"));
    let rendered = k2_horizon()
        .render(
            &[ChatMessage::user("2+2?"), ChatMessage::assistant("4")],
            false,
        )
        .unwrap();
    assert!(
        rendered.ends_with("assistant\n<ifm|think>\n</ifm|think>4<|ifm|im_end|>"),
        "{rendered:?}"
    );
    assert!(!rendered.contains("generation"));
}

#[test]
fn each_template_reports_its_reasoning_controls() {
    assert_eq!(
        qwen3().reasoning_controls(),
        ReasoningControls {
            thinking_switch: true,
            effort_kwarg: false,
            effort_tags: false,
        }
    );
    assert_eq!(
        k2_horizon().reasoning_controls(),
        ReasoningControls {
            thinking_switch: true,
            effort_kwarg: true,
            effort_tags: true,
        }
    );
    assert_eq!(
        ChatTemplate::chatml().reasoning_controls(),
        ReasoningControls::default()
    );
}

/// What `LoadedModel::chat_prompt` does with a template: the effort's plan, rendered.
fn prompt_at(t: &ChatTemplate, effort: Option<Effort>) -> String {
    let plan = plan_effort(t.reasoning_controls(), effort);
    let mut prompt = t
        .render_with(&[ChatMessage::user("2+2?")], true, &plan.template)
        .unwrap();
    if let Some(tag) = plan.prefill {
        prefill_think_tag(&mut prompt, tag);
    }
    prompt
}

#[test]
fn effort_opens_the_right_think_block_for_each_family() {
    // K2 Horizon: the effort's own tag, chosen by the template; its default is high.
    for effort in Effort::ALL {
        let prompt = prompt_at(&k2_horizon(), Some(effort));
        assert_eq!(
            prompt_opens_reasoning(&prompt),
            Some(k2_horizon_tags(effort).0),
            "{prompt:?}"
        );
    }
    assert_eq!(
        prompt_opens_reasoning(&prompt_at(&k2_horizon(), None)),
        Some("<ifm|think>")
    );
    // An older K2 Horizon template without the kwarg: the engine writes the tag itself.
    let without_kwarg =
        ChatTemplate::new("{{ '<|ifm|im_start|>assistant\\n<ifm|think>\\n' }}", "", "").unwrap();
    assert_eq!(
        prompt_opens_reasoning(&prompt_at(&without_kwarg, Some(Effort::Low))),
        Some("<ifm|think_faster>")
    );

    // Qwen3: low switches thinking off (a closed, empty block); otherwise the model opens it.
    let low = prompt_at(&qwen3(), Some(Effort::Low));
    assert!(low.ends_with("<think>\n\n</think>\n\n"), "{low:?}");
    assert_eq!(prompt_opens_reasoning(&low), None);
    let high = prompt_at(&qwen3(), Some(Effort::High));
    assert!(high.ends_with("<|im_start|>assistant\n"), "{high:?}");

    // Qwen3.5 opens the think block itself with thinking on (its default); low closes it empty.
    let high = prompt_at(&qwen35(), Some(Effort::High));
    assert!(
        high.ends_with("<|im_start|>assistant\n<think>\n"),
        "{high:?}"
    );
    assert_eq!(prompt_opens_reasoning(&high), Some("<think>"));
    let low = prompt_at(&qwen35(), Some(Effort::Low));
    assert!(low.ends_with("<think>\n\n</think>\n\n"), "{low:?}");
    assert_eq!(prompt_opens_reasoning(&low), None);

    // This R1 distill template prefills `<think>\n` with thinking on: output starts inside.
    let r1 = prompt_at(&r1_distill(), Some(Effort::Medium));
    assert_eq!(prompt_opens_reasoning(&r1), Some("<think>"), "{r1:?}");
    assert_eq!(
        plan_effort(r1_distill().reasoning_controls(), Some(Effort::Medium)).thinking_budget,
        Some(4096)
    );
}

#[test]
fn hostile_templates_give_clear_errors() {
    let unclosed = ChatTemplate::new("{% generation %}{{ messages }}", "", "").unwrap_err();
    assert!(matches!(unclosed, EngineError::ChatTemplate(_)));
    assert!(unclosed.to_string().contains("never closed"), "{unclosed}");

    // A template that refuses an effort says so, as the template worded it.
    let picky = ChatTemplate::new(
        "{% if reasoning_effort == 'low' %}{{ raise_exception('Unsupported reasoning_effort') }}{% endif %}ok",
        "",
        "",
    )
    .unwrap();
    let options = TemplateOptions {
        reasoning_effort: Some(Effort::Low),
        ..TemplateOptions::default()
    };
    let refused = picky.render_with(&[], true, &options).unwrap_err();
    assert!(
        refused.to_string().contains("Unsupported reasoning_effort"),
        "{refused}"
    );
    assert_eq!(picky.render(&[], true).unwrap(), "ok");
}
