//! Tokenizer against the real test models and llama.cpp's reference tokenizations
//! (`tests/golden/tokenizer-{qwen,smollm}.json`, made by `tests/golden/make_goldens.py`;
//! `tokenizer-qwen3.json`, made by `scripts/fixtures/qwen3_tokenizer_golden.py`).
//!
//! The models come from `scripts/fetch-test-models.sh` (`K2_MODELS_DIR` overrides the
//! default `~/.local/share/k2-tutor/models`). A missing model fails the test: these checks
//! are the proof that the engine tokenizes exactly like llama.cpp, so they must not be
//! skipped silently.

use candle_core::quantized::gguf_file;
use k2_engine::tokenizer::Tokenizer;
use serde::Deserialize;
use std::path::{Path, PathBuf};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

fn models_dir() -> PathBuf {
    match std::env::var_os("K2_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => dirs::data_dir()
            .expect("no data directory; set K2_MODELS_DIR")
            .join("k2-tutor")
            .join("models"),
    }
}

fn model_path(file: &str) -> PathBuf {
    let path = models_dir().join(file);
    assert!(
        path.exists(),
        "test model {} is missing: run scripts/fetch-test-models.sh (or set K2_MODELS_DIR)",
        path.display()
    );
    path
}

fn read_gguf(path: &Path) -> gguf_file::Content {
    let mut f = std::fs::File::open(path).unwrap();
    gguf_file::Content::read(&mut f).unwrap()
}

fn load(file: &str) -> Tokenizer {
    let path = model_path(file);
    Tokenizer::from_gguf(&read_gguf(&path), &path).unwrap()
}

#[derive(Deserialize)]
struct Golden {
    model_file: String,
    /// Tokens the golden's vocabulary adds to the model file's (Qwen3's to Qwen2.5's).
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    /// The pre-tokenizer the golden's vocabulary names, where it replaces the model file's.
    tokenizer_pre: Option<String>,
    bos_id: Option<i64>,
    eos_id: Option<i64>,
    add_bos: Option<bool>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: usize,
    text: String,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids_special: Vec<u32>,
    ids_plain: Vec<u32>,
}

fn golden(name: &str) -> Golden {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with tests/golden/make_goldens.py --only tokenizer)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn show(tok: &Tokenizer, ids: &[u32]) -> String {
    ids.iter()
        .map(|&id| format!("{id}:{:?}", tok.token_string(id).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every golden case, both modes, must give llama.cpp's ids exactly; all mismatches are
/// reported at once.
fn check_golden(name: &str) {
    let g = golden(name);
    let tok = load(&g.model_file);
    check_golden_doc(name, &tok, g);
}

fn check_golden_doc(name: &str, tok: &Tokenizer, g: Golden) {
    if let Some(bos) = g.bos_id.filter(|&b| b >= 0) {
        assert_eq!(tok.bos_id(), Some(bos as u32), "bos id");
    }
    if let Some(eos) = g.eos_id.filter(|&e| e >= 0) {
        assert_eq!(tok.eos_id(), Some(eos as u32), "eos id");
    }
    if let Some(add_bos) = g.add_bos {
        assert_eq!(tok.add_bos(), add_bos, "add_bos");
    }
    let mut failures = Vec::new();
    for case in &g.cases {
        for (mode, special, want) in [
            ("special", true, &case.ids_special),
            ("plain", false, &case.ids_plain),
        ] {
            let got = tok.encode(&case.text, special).unwrap();
            if &got != want {
                failures.push(format!(
                    "[{mode}] {:?}\n   want {}\n   got  {}",
                    case.text,
                    show(tok, want),
                    show(tok, &got)
                ));
            }
        }
    }
    let total = g.cases.len() * 2;
    eprintln!(
        "{name}: {}/{} golden encodings identical to llama.cpp",
        total - failures.len(),
        total
    );
    assert!(
        failures.is_empty(),
        "{} of {total} encodings differ from llama.cpp:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen_matches_llama_cpp() {
    check_golden("tokenizer-qwen.json");
}

#[test]
fn smollm_matches_llama_cpp() {
    check_golden("tokenizer-smollm.json");
}

/// The model file's vocabulary as the golden's generator wrote its vocab-only file: `added`
/// written in as user-defined tokens (GGUF token type 4), and `pre` as its pre-tokenizer.
fn edited_vocabulary(file: &str, added: &[AddedToken], pre: Option<&str>) -> Tokenizer {
    use gguf_file::Value;
    const USER_DEFINED: i32 = 4;
    let path = model_path(file);
    let mut content = read_gguf(&path);
    let mut edit = |key: &str, id: usize, value: Value| match content.metadata.get_mut(key) {
        Some(Value::Array(values)) => values[id] = value,
        _ => panic!("{file} has no array {key}"),
    };
    for token in added {
        edit(
            "tokenizer.ggml.tokens",
            token.id,
            Value::String(token.text.clone()),
        );
        edit(
            "tokenizer.ggml.token_type",
            token.id,
            Value::I32(USER_DEFINED),
        );
    }
    if let Some(pre) = pre {
        content.metadata.insert(
            "tokenizer.ggml.pre".to_owned(),
            Value::String(pre.to_owned()),
        );
    }
    Tokenizer::from_gguf(&content, &path).unwrap()
}

/// Qwen3's vocabulary is Qwen2.5's plus `<tool_response>`, `</tool_response>`, `<think>` and
/// `</think>` (151665-151668) as ordinary added tokens: the think tags are single tokens in
/// plain text too, and reasoning traces tokenize as llama.cpp tokenizes them.
#[test]
fn qwen3_matches_llama_cpp() {
    let name = "tokenizer-qwen3.json";
    let g = golden(name);
    assert!(
        g.added_tokens
            .iter()
            .any(|t| t.id == 151667 && t.text == "<think>"),
        "{name} does not add Qwen3's <think>"
    );
    let tok = edited_vocabulary(&g.model_file, &g.added_tokens, None);
    assert_eq!(tok.encode("<think>", false).unwrap(), [151667]);
    assert_eq!(tok.decode(&[151667, 151668]).unwrap(), "<think></think>");
    check_golden_doc(name, &tok, g);
}

/// Qwen3.5's pre-tokenizer (`qwen35`: letter runs take combining marks) on Qwen2.5's vocabulary:
/// words cut as llama.cpp cuts them, over the golden corpus and texts with combining marks.
#[test]
fn qwen35_pre_tokenizer_matches_llama_cpp() {
    let name = "tokenizer-qwen35-pre.json";
    let g = golden(name);
    assert_eq!(g.tokenizer_pre.as_deref(), Some("qwen35"));
    let tok = edited_vocabulary(&g.model_file, &g.added_tokens, g.tokenizer_pre.as_deref());
    assert_eq!(tok.pre_tokenizer(), "qwen35");
    check_golden_doc(name, &tok, g);
}

/// llama.cpp's own test vectors for the `qwen35` pre-tokenizer (`models/ggml-vocab-qwen35.gguf
/// .inp/.out` in its sources, as its `test-tokenizer-0` tokenizes them: no special tokens).
/// Their vocabulary is Qwen2's, the same tokens and merges as our Qwen2.5 test model's except
/// 19 control tokens that plain text never yields, so the test model's vocabulary with
/// `pre = qwen35` must give exactly their ids. (These vectors come out the same under `qwen2`;
/// what only `qwen35` gets right is in `tokenizer-qwen35-pre.json`'s Thai and Arabic cases.)
#[test]
fn qwen35_pre_tokenizer_passes_llama_cpps_own_test_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/llama.cpp-vocab-tests");
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let inputs = read("ggml-vocab-qwen35.gguf.inp");
    let texts: Vec<&str> = inputs
        .strip_suffix("\n__ggml_vocab_test__\n")
        .unwrap()
        .split("\n__ggml_vocab_test__\n")
        .collect();
    let outputs = read("ggml-vocab-qwen35.gguf.out");
    let expected: Vec<Vec<u32>> = outputs
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), expected.len());
    let tok = edited_vocabulary(QWEN, &[], Some("qwen35"));
    let failures: Vec<String> = texts
        .iter()
        .zip(&expected)
        .filter_map(|(text, want)| {
            let got = tok.encode(text, false).unwrap();
            (&got != want).then(|| format!("{text:?}\n   want {want:?}\n   got  {got:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        texts.len(),
        failures.join("\n")
    );
}

/// Texts of our own, so round trips and streaming are tested even on cases the goldens lack.
const EXTRA: &[&str] = &[
    "Hello world",
    "🙂🎉🚀 emoji 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "我们今天学习二次方程的解法。数学の問題を解きましょう。한국어",
    "x² + y³ = ½ ∑∫√∞ → ≤",
    "e\u{301} vs é, naïve café",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    "<tool_call>{\"a\": 1}</tool_call>",
    "  \t\n\r\n  trailing   ",
    "",
];

fn corpus(golden_name: &str) -> Vec<String> {
    let mut texts: Vec<String> = EXTRA.iter().map(|s| s.to_string()).collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(golden_name);
    if path.exists() {
        texts.extend(golden(golden_name).cases.into_iter().map(|c| c.text));
    }
    texts
}

fn check_round_trip(file: &str, golden_name: &str) {
    let tok = load(file);
    for text in corpus(golden_name) {
        let ids = tok.encode(&text, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "round trip of {text:?}");
    }
}

#[test]
fn qwen_round_trip() {
    check_round_trip(QWEN, "tokenizer-qwen.json");
}

#[test]
fn smollm_round_trip() {
    check_round_trip(SMOLLM, "tokenizer-smollm.json");
}

/// Streaming gives exactly `decode(all)`, and never yields half a character: every pushed
/// chunk is a whole `String`, and tokens that end mid-character yield nothing.
fn check_stream(file: &str, golden_name: &str) {
    let tok = load(file);
    let mut split_chars = 0;
    for text in corpus(golden_name) {
        for special in [false, true] {
            let ids = tok.encode(&text, special).unwrap();
            let mut stream = tok.stream_decoder();
            let mut streamed = String::new();
            for &id in &ids {
                match stream.push(id) {
                    Some(chunk) => streamed.push_str(&chunk),
                    None => split_chars += usize::from(stream.has_pending()),
                }
            }
            streamed.push_str(&stream.finish());
            assert_eq!(streamed, tok.decode(&ids).unwrap(), "stream of {text:?}");
        }
    }
    assert!(
        split_chars > 0,
        "the corpus should contain characters split across tokens"
    );
}

#[test]
fn qwen_stream_decoding() {
    check_stream(QWEN, "tokenizer-qwen.json");
}

#[test]
fn smollm_stream_decoding() {
    check_stream(SMOLLM, "tokenizer-smollm.json");
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let tok = load(QWEN);
    // Find byte tokens for the 4 bytes of 🙂 (F0 9F 99 82): single-byte tokens exist for all
    // 256 bytes in a byte-level vocabulary.
    let byte_token = |b: u8| {
        (0..tok.vocab_size() as u32)
            .find(|&id| tok.token_bytes(id) == Some(&[b][..]))
            .unwrap()
    };
    let ids: Vec<u32> = "🙂".bytes().map(byte_token).collect();
    let mut s = tok.stream_decoder();
    assert_eq!(s.push(ids[0]), None);
    assert_eq!(s.push(ids[1]), None);
    assert_eq!(s.push(ids[2]), None);
    assert_eq!(s.push(ids[3]).as_deref(), Some("🙂"));
    // A dangling start byte is flushed as U+FFFD, like `decode`.
    let mut s = tok.stream_decoder();
    assert_eq!(s.push(ids[0]), None);
    assert_eq!(s.push(byte_token(b'a')).as_deref(), Some("\u{FFFD}a"));
    let mut s = tok.stream_decoder();
    assert_eq!(s.push(ids[0]), None);
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(tok.decode(&ids[..1]).unwrap(), "\u{FFFD}");
}

#[test]
fn qwen_metadata_and_end_tokens() {
    let tok = load(QWEN);
    assert_eq!(tok.tokenizer_model(), "gpt2");
    assert_eq!(tok.pre_tokenizer(), "qwen2");
    assert_eq!(tok.vocab_size(), 151_936);
    assert_eq!(tok.bos_id(), Some(151_643));
    assert_eq!(tok.eos_id(), Some(151_645));
    assert!(!tok.add_bos());
    // Both Qwen end tokens stop generation.
    assert!(tok.is_end_of_generation(151_645)); // <|im_end|>
    assert!(tok.is_end_of_generation(151_643)); // <|endoftext|>
    assert!(!tok.is_end_of_generation(151_644)); // <|im_start|>
                                                 // llama.cpp's full end set (llama_vocab_is_eog, llama-cpp-python 0.3.36): also FIM
                                                 // pad/repo/file-sep and the vocabulary's plain `</s>`, which llama.cpp makes a control token.
    assert_eq!(
        tok.end_of_generation_ids(),
        [128_247, 151_643, 151_645, 151_662, 151_663, 151_664]
    );
    assert_eq!(tok.encode("x</s>y", true).unwrap(), [87, 128_247, 88]);
    assert_eq!(tok.encode("x</s>y", false).unwrap(), [87, 522, 82, 82_244]);
    assert_eq!(tok.token_string(151_645), Some("<|im_end|>"));
    assert_eq!(tok.token_id("<|im_end|>"), Some(151_645));
    assert_eq!(tok.token_string(151_936), None);
    // Special tokens are kept as text when decoding.
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", true).unwrap();
    assert_eq!(ids[0], 151_644);
    assert_eq!(*ids.last().unwrap(), 151_645);
    assert_eq!(tok.decode(&ids).unwrap(), "<|im_start|>user\nhi<|im_end|>");
    // Without special parsing, the same text is ordinary text.
    let plain = tok.encode("<|im_end|>", false).unwrap();
    assert!(plain.len() > 1 && !plain.contains(&151_645));
    // encode_prompt adds no BOS for Qwen (add_bos_token = false).
    assert_eq!(
        tok.encode_prompt("hi", false).unwrap(),
        tok.encode("hi", false).unwrap()
    );
    assert!(tok.decode(&[999_999]).is_err());
}

#[test]
fn smollm_metadata_and_end_tokens() {
    let tok = load(SMOLLM);
    assert_eq!(tok.pre_tokenizer(), "smollm");
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(tok.is_end_of_generation(2)); // <|im_end|>
    assert!(tok.is_end_of_generation(0)); // <|endoftext|>
    assert!(!tok.is_end_of_generation(1));
    // As llama.cpp: <reponame> is the FIM repo token, which ends generation too.
    assert_eq!(tok.end_of_generation_ids(), [0, 2, 4]);
}

/// A Hugging Face `tokenizer.json` with the same vocabulary, merges, pre-tokenizer and added
/// tokens as the Qwen GGUF must tokenize identically through `from_files`.
#[test]
fn from_files_matches_from_gguf() {
    let path = model_path(QWEN);
    let ct = read_gguf(&path);
    let gguf_tok = Tokenizer::from_gguf(&ct, &path).unwrap();
    let md = &ct.metadata;
    let strings = |key: &str| -> Vec<String> {
        md[key]
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_string().unwrap().clone())
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens");
    let merges = strings("tokenizer.ggml.merges");
    let types: Vec<u32> = md["tokenizer.ggml.token_type"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|v| v.to_i32().unwrap() as u32)
        .collect();

    // Like Qwen's published tokenizer.json: added tokens outside the BPE vocabulary.
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        match ty {
            3 | 4 => added.push(serde_json::json!({
                "id": id, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": *ty == 3
            })),
            5 => {}
            _ => {
                vocab.insert(t.clone(), serde_json::json!(id));
            }
        }
    }
    let regex = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        // Qwen's real file has an NFC normalizer; llama.cpp has none, so leave it out to
        // compare exactly.
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            byte_level.clone()
        ]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
                  "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    });
    let dir = std::env::temp_dir().join(format!("k2-tokenizer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tj = dir.join("tokenizer.json");
    std::fs::write(&tj, serde_json::to_vec(&json).unwrap()).unwrap();
    let tc = dir.join("tokenizer_config.json");
    std::fs::write(
        &tc,
        r#"{"bos_token": null, "eos_token": {"content": "<|im_end|>"}, "add_bos_token": false}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": [151645, 151643]}"#,
    )
    .unwrap();
    let hf_tok = Tokenizer::from_files(&tj, Some(&tc)).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(hf_tok.eos_id(), Some(151_645));
    assert_eq!(hf_tok.bos_id(), None);
    assert!(hf_tok.is_end_of_generation(151_645));
    assert!(hf_tok.is_end_of_generation(151_643));
    for text in corpus("tokenizer-qwen.json") {
        for special in [true, false] {
            let want = gguf_tok.encode(&text, special).unwrap();
            assert_eq!(
                hf_tok.encode(&text, special).unwrap(),
                want,
                "{text:?} special={special}"
            );
            assert_eq!(
                hf_tok.decode(&want).unwrap(),
                gguf_tok.decode(&want).unwrap()
            );
        }
    }
}

#[test]
fn unsupported_and_missing_metadata_are_clear_errors() {
    use gguf_file::Value;
    let path = model_path(SMOLLM);
    let mut ct = read_gguf(&path);
    ct.metadata.remove("tokenizer.ggml.merges");
    let err = Tokenizer::from_gguf(&ct, &path).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.merges"), "{err}");
    ct.metadata
        .insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    let err = Tokenizer::from_gguf(&ct, &path).unwrap_err().to_string();
    assert!(
        err.contains("`llama`") && err.contains("not supported"),
        "{err}"
    );
    ct.metadata.remove("tokenizer.ggml.model");
    let err = Tokenizer::from_gguf(&ct, &path).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.model"), "{err}");
}

/// A merge whose result the vocabulary lacks (which llama.cpp loads and, tokenizing, undoes:
/// an unknown merged piece falls back to its parts) is left out: the tokenizer still builds
/// and encodes as it did without it.
#[test]
fn a_merge_making_an_unknown_token_is_left_out_as_llama_cpp_ignores_it() {
    use gguf_file::Value;
    let path = model_path(SMOLLM);
    let plain = Tokenizer::from_gguf(&read_gguf(&path), &path).unwrap();
    let mut content = read_gguf(&path);
    match content.metadata.get_mut("tokenizer.ggml.merges") {
        // First, so it would apply before every real merge if it were kept.
        Some(Value::Array(merges)) => merges.insert(0, Value::String("Ġ zzq".into())),
        _ => panic!("SmolLM2 has merges"),
    }
    let edited = Tokenizer::from_gguf(&content, &path).unwrap();
    for text in [
        "The cat sat on the mat.",
        " zzq zzqz",
        "x = 17 + 25",
        "Ġzzq",
    ] {
        assert_eq!(
            edited.encode_prompt(text, false).unwrap(),
            plain.encode_prompt(text, false).unwrap(),
            "{text:?}"
        );
    }
}
