//! Chat templates: the real models' embedded templates, the ChatML fallback, and the
//! Hugging Face-compatible helpers (`tojson`, `raise_exception`, pycompat methods).

use candle_core::quantized::gguf_file;
use k2_engine::chat::{ChatMessage, ChatTemplate};
use k2_engine::EngineError;
use std::path::PathBuf;

fn model_template(file: &str) -> ChatTemplate {
    let dir = match std::env::var_os("K2_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => dirs::data_dir().unwrap().join("k2-tutor").join("models"),
    };
    let path = dir.join(file);
    assert!(
        path.exists(),
        "test model {} is missing: run scripts/fetch-test-models.sh (or set K2_MODELS_DIR)",
        path.display()
    );
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    ChatTemplate::from_gguf(&ct).unwrap()
}

#[test]
fn qwen_template_renders_chatml() {
    let t = model_template("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert!(!t.is_fallback());
    assert_eq!(t.eos_token(), "<|im_end|>");
    let msgs = [
        ChatMessage::system("You are a patient math tutor."),
        ChatMessage::user("What is 7 * 8?"),
    ];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<|im_start|>system\nYou are a patient math tutor.<|im_end|>\n\
         <|im_start|>user\nWhat is 7 * 8?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&msgs, false).unwrap(),
        "<|im_start|>system\nYou are a patient math tutor.<|im_end|>\n\
         <|im_start|>user\nWhat is 7 * 8?<|im_end|>\n"
    );

    // Without a system message Qwen's template inserts its default one; take it from the
    // template text so the test checks the rendering, not our memory of the prompt.
    let default = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    assert!(t.source().contains(default));
    let msgs = [
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello! How can I help?"),
        ChatMessage::user("2+2?"),
    ];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        format!(
            "<|im_start|>system\n{default}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello! How can I help?<|im_end|>\n\
             <|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
}

#[test]
fn smollm_template_renders() {
    let t = model_template("smollm2-135m-instruct-q4_1.gguf");
    let default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    assert!(t.source().contains(default));
    assert_eq!(
        t.render(&[ChatMessage::user("Hi")], true).unwrap(),
        format!(
            "<|im_start|>system\n{default}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        )
    );
    assert_eq!(
        t.render(
            &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
            false
        )
        .unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
}

#[test]
fn chatml_fallback() {
    let t = ChatTemplate::chatml();
    assert!(t.is_fallback());
    assert_eq!(
        t.render(&[ChatMessage::user("Hi")], true).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn tojson_matches_python_json_dumps() {
    let t = ChatTemplate::new(
        "{{ messages | tojson }}|{{ messages[0] | tojson(indent=2) }}|{{ [1, 2.0, 0.5, none, true, {}] | tojson }}",
        "",
        "",
    )
    .unwrap();
    let out = t
        .render(&[ChatMessage::user("<é> \"q\" \\ \n 🙂")], false)
        .unwrap();
    // json.dumps(..., ensure_ascii=False): no HTML escaping, non-ASCII kept, ", " / ": ".
    assert_eq!(
        out,
        "[{\"role\": \"user\", \"content\": \"<é> \\\"q\\\" \\\\ \\n 🙂\"}]|\
         {\n  \"role\": \"user\",\n  \"content\": \"<é> \\\"q\\\" \\\\ \\n 🙂\"\n}|\
         [1, 2.0, 0.5, null, true, {}]"
    );
    let t = ChatTemplate::new("{{ 'é🙂' | tojson(ensure_ascii=true) }}", "", "").unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "\"\\u00e9\\ud83d\\ude42\"");
}

#[test]
fn raise_exception_and_syntax_errors_are_chat_template_errors() {
    let t = ChatTemplate::new(
        "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must start with user') }}{% endif %}ok",
        "",
        "",
    )
    .unwrap();
    assert_eq!(t.render(&[ChatMessage::user("x")], false).unwrap(), "ok");
    match t.render(&[ChatMessage::assistant("x")], false) {
        Err(EngineError::ChatTemplate(msg)) => {
            assert!(
                msg.contains("Conversation roles must start with user"),
                "{msg}"
            )
        }
        other => panic!("expected a chat template error, got {other:?}"),
    }
    match ChatTemplate::new("{% for %}", "", "") {
        Err(EngineError::ChatTemplate(_)) => {}
        other => panic!("expected a chat template error, got {other:?}"),
    }
}

#[test]
fn python_methods_and_variables() {
    let t = ChatTemplate::new(
        "{{ bos_token }}{% for m in messages %}{{ m.content.strip() }}|{{ m.role.startswith('us') }}|\
         {{ m.content.split('</think>')[-1] }}{% endfor %}|{{ strftime_now('%Y') | length }}{{ eos_token }}",
        "<s>",
        "</s>",
    )
    .unwrap();
    // Booleans print Python-style (`True`), as Jinja2 does.
    assert_eq!(
        t.render(&[ChatMessage::user("  why</think>answer  ")], false)
            .unwrap(),
        "<s>why</think>answer|True|answer  |4</s>"
    );
}

#[test]
fn tokenizer_config_templates() {
    let dir = std::env::temp_dir().join(format!("k2-chat-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("tokenizer_config.json");

    std::fs::write(
        &cfg,
        r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>",
            "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}"}"#,
    )
    .unwrap();
    let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap();
    assert_eq!(
        t.render(&[ChatMessage::user("hi")], false).unwrap(),
        "<s>[user]hi</s>"
    );

    std::fs::write(
        &cfg,
        r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
    )
    .unwrap();
    let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "D");

    std::fs::write(&cfg, r#"{"eos_token": "<|im_end|>"}"#).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap();
    assert!(t.is_fallback());
    std::fs::remove_dir_all(&dir).ok();
}
