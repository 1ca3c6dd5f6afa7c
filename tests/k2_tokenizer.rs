//! K2 Horizon's tokenizer pipeline (NFC, its split pattern, byte-level BPE, its special
//! tokens) against Hugging Face's `tokenizers` on a fuzz corpus; the BPE was trained with that
//! pipeline by `scripts/fixtures/k2_tokenizer_fixture.py`, which also recorded the expected ids.

use std::path::PathBuf;

use candle_core::quantized::gguf_file::Content;
use k2_engine::tokenizer::Tokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer/k2-horizon")
}

fn tokenizer() -> Tokenizer {
    let path = fixture().join("vocab.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let content = Content::read(&mut file).unwrap();
    Tokenizer::from_gguf(&content, &path).unwrap()
}

#[test]
fn k2_horizon_tokenizer_matches_hugging_face_tokenizers_on_the_fuzz_corpus() {
    let tokenizer = tokenizer();
    assert_eq!(tokenizer.pre_tokenizer(), "k2-horizon");
    let text = std::fs::read_to_string(fixture().join("cases.json")).unwrap();
    let cases: Cases = serde_json::from_str(&text).unwrap();
    assert!(cases.cases.len() > 200);
    let mut wrong = Vec::new();
    for case in &cases.cases {
        let ours = tokenizer.encode(&case.text, false).unwrap();
        if ours != case.ids {
            wrong.push(format!(
                "{:?}: ours {ours:?}, tokenizers {:?}",
                case.text, case.ids
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        cases.cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn decomposed_and_composed_accents_give_the_same_tokens() {
    let tokenizer = tokenizer();
    let composed = tokenizer.encode("café", false).unwrap();
    let decomposed = tokenizer.encode("cafe\u{301}", false).unwrap();
    assert_eq!(composed, decomposed);
}

#[test]
fn special_tokens_are_single_ids_and_a_written_bos_is_not_doubled() {
    let tokenizer = tokenizer();
    let bos = tokenizer.bos_id().unwrap();
    for tag in [
        "<ifm|think>",
        "</ifm|think>",
        "<ifm|think_fast>",
        "<|ifm|im_end|>",
    ] {
        let ids = tokenizer.encode(tag, true).unwrap();
        assert_eq!(ids.len(), 1, "{tag} -> {ids:?}");
        // User text cannot forge them.
        assert!(tokenizer.encode(tag, false).unwrap().len() > 1, "{tag}");
    }
    let templated = tokenizer
        .encode_prompt("<|ifm|begin_of_text|><|ifm|im_start|>user\nhi", true)
        .unwrap();
    assert_eq!(templated.iter().filter(|&&t| t == bos).count(), 1);
    assert_eq!(templated[0], bos);
    let plain = tokenizer.encode_prompt("hi", true).unwrap();
    assert_eq!(
        plain[0], bos,
        "the model asks for BOS where the text has none"
    );
}
