//! The fuzz targets' entry functions: one `fn(&[u8])` per reader of untrusted input. The
//! cargo-fuzz crate (`fuzz/`, outside the workspace, nightly) calls them from libFuzzer, and
//! `tests/regressions.rs` feeds them every committed crasher under `fuzz/regressions/<target>/`
//! in the ordinary `cargo test`, so a crash found once stays fixed. Both call the same code,
//! so a crasher reproduces in either.
//!
//! An entry function may return early on input its reader rejects with an error: the property
//! fuzzed is "no panic, abort or hang", not "accepts everything".

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod split;

pub use split::split_parts;

/// A target's entry function: runs one input, never panics.
pub type Entry = fn(&[u8]);

/// Every target, by the name its fuzz binary and its regression folder have.
pub const TARGETS: &[(&str, Entry)] = &[
    ("gguf", gguf),
    ("hf_config", hf_config),
    ("tokenizer", tokenizer),
    ("chat_template", chat_template),
    ("render", render),
    ("sse", sse),
    ("answer", answer),
    ("store_payload", store_payload),
];

/// The repository root (fixtures are read from it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch file of this process for readers that take a path (the GGUF reader, the
/// `config.json` reader). RAM-backed where the machine has `/dev/shm`, since every execution
/// rewrites it.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let base = Path::new("/dev/shm");
    let dir = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = dir.join(format!("k2-fuzz-{}", std::process::id()));
    // A failure to write scratch space is the machine's problem, not a finding.
    std::fs::create_dir_all(&dir).expect("cannot create the fuzzing scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("cannot write the fuzzing scratch file");
    path
}

/// The GGUF reader: header, metadata and tensor directory, then what the loader reads from
/// them before any weight (model settings, tokenizer, chat template).
pub fn gguf(data: &[u8]) {
    let path = scratch_file("model.gguf", data);
    let Ok(file) = k2_engine::gguf::GgufFile::open(&path) else {
        return;
    };
    let _ = file.dominant_quantization();
    let _ = file.quantization_label();
    let _ = k2_engine::model::ModelConfig::from_gguf(&file);
    if let Ok(tokenizer) = k2_engine::tokenizer::Tokenizer::from_gguf(&file.content, &path) {
        let _ = tokenizer.encode("What is 17 + 25? <|im_end|>", true);
    }
    if let Ok(template) = k2_engine::chat::ChatTemplate::from_gguf(&file.content) {
        let _ = template.render(&[k2_scaffold::ChatMessage::new("user", "1+1?")], true);
    }
}

/// A safetensors model's `config.json`.
pub fn hf_config(data: &[u8]) {
    let path = scratch_file("config.json", data);
    let _ = k2_engine::model::ModelConfig::from_hf_config(&path);
}

/// A real vocabulary (K2 Horizon's, a committed fixture), loaded once.
fn fixture_tokenizer() -> &'static k2_engine::tokenizer::Tokenizer {
    static TOKENIZER: OnceLock<k2_engine::tokenizer::Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/tokenizer/k2-horizon/vocab.gguf");
        let file = k2_engine::gguf::GgufFile::open(&path).expect("the tokenizer fixture opens");
        k2_engine::tokenizer::Tokenizer::from_gguf(&file.content, &path)
            .expect("the tokenizer fixture builds")
    })
}

/// The tokenizer on arbitrary text (with and without special-token parsing), decoding of
/// arbitrary ids (in and out of the vocabulary), and the streaming decoder on them.
pub fn tokenizer(data: &[u8]) {
    let tokenizer = fixture_tokenizer();
    let text = String::from_utf8_lossy(data);
    for parse_special in [false, true] {
        if let Ok(ids) = tokenizer.encode(&text, parse_special) {
            let _ = tokenizer.decode(&ids);
        }
        let _ = tokenizer.encode_prompt(&text, parse_special);
    }
    let vocab = tokenizer.vocab_size() as u32;
    let ids: Vec<u32> = data
        .chunks(2)
        .map(|pair| {
            let id = u32::from(pair[0]) | u32::from(*pair.get(1).unwrap_or(&0)) << 8;
            // Mostly in the vocabulary, sometimes just past it.
            id % (vocab + 4)
        })
        .collect();
    let _ = tokenizer.decode(&ids);
    let mut stream = tokenizer.stream_decoder();
    for &id in &ids {
        let _ = stream.push(id);
    }
    let _ = stream.finish();
    for &id in &ids {
        let _ = tokenizer.token_bytes(id);
        let _ = tokenizer.token_string(id);
    }
}

/// A chat template from a model file (its source fuzzed, rendering a fixed conversation), or
/// a real template rendering a fuzzed conversation. The first byte picks which.
pub fn chat_template(data: &[u8]) {
    use k2_engine::chat::{ChatTemplate, TemplateOptions};
    use k2_scaffold::ChatMessage;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parts = split_parts(rest, 4);
    let text =
        |i: usize| String::from_utf8_lossy(parts.get(i).copied().unwrap_or(b"")).into_owned();
    let options = TemplateOptions {
        enable_thinking: [None, Some(false), Some(true)][usize::from(mode >> 4) % 3],
        reasoning_effort: None,
    };
    if mode & 1 == 0 {
        let Ok(template) = ChatTemplate::new(text(0), text(1), text(2)) else {
            return;
        };
        let messages = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "What is 17 + 25?"),
            ChatMessage::new("assistant", "<think>add</think>42"),
            ChatMessage::new("user", "Why?"),
        ];
        let _ = template.render_with(&messages, true, &options);
        let _ = template.reasoning_controls();
    } else {
        const SOURCES: [&str; 4] = [
            "Qwen-Qwen3-0.6B.jinja",
            "Qwen-QwQ-32B.jinja",
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
            "k2-horizon-style.jinja",
        ];
        static TEMPLATES: OnceLock<Vec<ChatTemplate>> = OnceLock::new();
        let templates = TEMPLATES.get_or_init(|| {
            let mut all = vec![ChatTemplate::chatml()];
            for name in SOURCES {
                let path = repo_root()
                    .join("engine/tests/fixtures/chat_templates")
                    .join(name);
                let source = std::fs::read_to_string(&path).expect("the template fixture reads");
                all.push(
                    ChatTemplate::new(source, "<s>", "</s>")
                        .expect("the template fixture compiles"),
                );
            }
            all
        });
        let template = &templates[usize::from(mode >> 1) % templates.len()];
        let roles = ["user", "assistant", "system", "tool"];
        let messages: Vec<ChatMessage> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let role = if i == 0 {
                    text(3)
                } else {
                    roles[i % roles.len()].to_owned()
                };
                ChatMessage::new(role, String::from_utf8_lossy(part))
            })
            .collect();
        let _ = template.render_with(&messages, mode & 2 == 0, &options);
    }
}

/// The Markdown/LaTeX renderer: whole documents, one-line previews, math alone, and the
/// delimiter normalizer.
pub fn render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = k2_render::markdown_to_html(&text);
    let limit = data.first().map_or(0, |&b| usize::from(b));
    let _ = k2_render::markdown_preview(&text, limit);
    let _ = k2_render::normalize_math_delimiters(&text);
    let display = data.last().is_some_and(|b| b & 1 == 0);
    let _ = k2_render::render_math(&text, display);
    let _ = k2_render::escape_html(&text);
}

/// The remote backend's SSE parser on a hostile byte stream, through a small buffer so lines
/// cross buffer boundaries.
pub fn sse(data: &[u8]) {
    let capacity = 1 + data.first().map_or(0, |&b| usize::from(b) % 64);
    let reader = std::io::BufReader::with_capacity(capacity, data);
    let mut events = k2_scaffold::remote::sse::SseReader::new(reader);
    // Every call consumes at least one byte or ends, so this bound is never what stops it.
    for _ in 0..=data.len() {
        match events.next_item() {
            Ok(Some(k2_scaffold::remote::sse::SseItem::Data(text))) => {
                let _ = serde_json::from_str::<k2_scaffold::openai::ChatChunk>(&text);
            }
            Ok(Some(k2_scaffold::remote::sse::SseItem::Done)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// Answer extraction, normalization and equivalence between two fuzzed answers, and the work
/// checker on the first as a student's work.
pub fn answer(data: &[u8]) {
    let parts = split_parts(data, 2);
    let a = String::from_utf8_lossy(parts.first().copied().unwrap_or(b""));
    let b = String::from_utf8_lossy(parts.get(1).copied().unwrap_or(b""));
    let _ = k2_answer::extract_answer(&a);
    let _ = k2_answer::normalize(&a);
    let _ = k2_answer::compare(&a, &b);
    let _ = k2_answer::equivalent(&b, &a);
    let _ = k2_answer::work::check_work(&a, None);
    let _ = k2_answer::work::value_of(&b);
}

/// What the store decodes from text it reads back: each line an event's JSON payload, folded
/// into a run's view as a replay does, and the same text as an imported problem set. (Row
/// decoding itself goes through `sqlx::Row`, which has no pure function to fuzz.)
pub fn store_payload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut view = k2_protocol::RunView::default();
    for (seq, line) in text.lines().enumerate() {
        if let Ok(kind) = serde_json::from_str::<k2_protocol::RunEvent>(line) {
            let event = k2_protocol::Event {
                seq: seq as u64,
                elapsed_ms: seq as u64 * 7,
                kind,
            };
            view.apply(&event);
        }
    }
    let _ = k2_store::problem_set::parse_problem_set(&text);
}
