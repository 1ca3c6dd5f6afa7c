//! Pre-tokenizer families: how text is cut into words before BPE merges run inside each word.
//!
//! The regexes are llama.cpp's (`llm_tokenizer_bpe` in `src/llama-vocab.cpp`), selected the way
//! llama.cpp selects them from GGUF `tokenizer.ggml.pre`, because llama.cpp is the reference the
//! golden tests compare against. llama.cpp applies a *list* of regexes in turn: every piece of
//! text (matches and the gaps between them) produced by one regex is split again by the next.
//! That is exactly a sequence of `Split(regex, Isolated)` pre-tokenizers, followed by the
//! byte-level mapping (without its own GPT-2 regex).

use crate::error::{EngineError, Result};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::tokenizer::SplitDelimiterBehavior;

/// GPT-2's word regex, as llama.cpp writes it (no trailing `|\s+`: llama.cpp's hand-written
/// matcher emits any unmatched whitespace as its own piece, which Isolated splitting also does).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3 (`llama-bpe`): case-insensitive contractions, digits in groups of up to three.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2: Llama 3's regex with every digit on its own.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen3.5 (`qwen35`): Qwen2's regex whose letter runs also take combining marks (and whose
/// punctuation runs leave them out), every digit on its own. llama.cpp applies no Unicode
/// normalization for it (transformers' tokenizer adds NFC); this engine follows llama.cpp.
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// K2 Horizon: Llama 3's regex whose letter runs also take combining marks and the zero-width
/// (non-)joiners, so an accented or Indic word stays one piece; digits in groups of up to three.
const K2_HORIZON: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}|\p{M}|\x{200C}|\x{200D})+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer families this engine knows. Names follow llama.cpp's `LLAMA_VOCAB_PRE_TYPE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// `tokenizer.ggml.pre` missing or `default`: llama.cpp's fallback list of four regexes.
    Default,
    /// `gpt-2` and friends: the plain GPT-2 regex.
    Gpt2,
    /// `llama-bpe` / `llama3`: the Llama 3 regex; BPE also ignores merges for whole-word tokens.
    Llama3,
    /// `qwen2`, `deepseek-r1-qwen`, `megrez`.
    Qwen2,
    /// `qwen35`: Qwen3.5 (see [`QWEN35`]).
    Qwen35,
    /// `smollm` (and the StarCoder family): every digit isolated, then the GPT-2 regex.
    SmolLm,
    /// `k2-horizon`: its own regex (see [`K2_HORIZON`]); text is NFC-normalized first.
    K2Horizon,
}

impl PreTokenizerKind {
    /// Maps a GGUF `tokenizer.ggml.pre` value to a family. `None` = not a name we know.
    pub fn from_gguf_name(pre: &str) -> Option<Self> {
        Some(match pre {
            "" | "default" => Self::Default,
            "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es"
            | "jina-v2-de" | "gigachat" | "mpt" | "olmo" | "jais" => Self::Gpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "lfm2" => {
                Self::Llama3
            }
            "qwen2" | "deepseek-r1-qwen" | "megrez" => Self::Qwen2,
            "qwen35" => Self::Qwen35,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Self::SmolLm,
            "k2-horizon" => Self::K2Horizon,
            _ => return None,
        })
    }

    /// The regexes llama.cpp applies, in order.
    pub fn regexes(self) -> &'static [&'static str] {
        match self {
            Self::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Self::Gpt2 => &[GPT2],
            Self::Llama3 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::Qwen35 => &[QWEN35],
            Self::SmolLm => &[r"\p{N}", GPT2],
            Self::K2Horizon => &[K2_HORIZON],
        }
    }

    /// Whether BPE should emit a whole pre-tokenized word directly when it is in the vocabulary
    /// (llama.cpp's `ignore_merges`, set for the Llama 3 family only).
    pub fn ignore_merges(self) -> bool {
        self == Self::Llama3
    }

    /// A short stable name for logs and `Tokenizer::pre_tokenizer()`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Gpt2 => "gpt2",
            Self::Llama3 => "llama3",
            Self::Qwen2 => "qwen2",
            Self::Qwen35 => "qwen35",
            Self::SmolLm => "smollm",
            Self::K2Horizon => "k2-horizon",
        }
    }

    /// Whether text is NFC-normalized before it is cut (K2 Horizon's tokenizer composes
    /// "e" + U+0301 into "é", so both spellings give the same tokens).
    pub fn normalizes_nfc(self) -> bool {
        self == Self::K2Horizon
    }

    /// Builds the `tokenizers` pre-tokenizer: the regex splits, then byte-level mapping.
    pub(crate) fn build(self) -> Result<PreTokenizerWrapper> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in self.regexes() {
            let split = Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| EngineError::Tokenizer(format!("pre-tokenizer regex {re:?}: {e}")))?;
            steps.push(split.into());
        }
        // add_prefix_space = false, trim_offsets = false, use_regex = false: the splits above
        // already did the word cutting; this step only maps bytes to their stand-in characters.
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(Sequence::new(steps).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::tokenizer::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn words(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let pt = kind.build().unwrap();
        let mut s = PreTokenizedString::from(text);
        pt.pre_tokenize(&mut s).unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(w, _, _)| w.to_string())
            .collect()
    }

    #[test]
    fn digits_split_per_family() {
        assert_eq!(
            words(PreTokenizerKind::Qwen2, "x 1234"),
            ["x", "Ġ", "1", "2", "3", "4"]
        );
        assert_eq!(
            words(PreTokenizerKind::Llama3, "x 1234"),
            ["x", "Ġ", "123", "4"]
        );
        // SmolLM: digits isolated first, so GPT-2's ` ?\p{N}+` never sees more than one digit.
        assert_eq!(
            words(PreTokenizerKind::SmolLm, "x 1234"),
            ["x", "Ġ", "1", "2", "3", "4"]
        );
        assert_eq!(words(PreTokenizerKind::Gpt2, "x 1234"), ["x", "Ġ1234"]);
        // K2 Horizon: groups of three from the left, as the issue's "12345" -> "123|45".
        assert_eq!(
            words(PreTokenizerKind::K2Horizon, "x 12345"),
            ["x", "Ġ", "123", "45"]
        );
    }

    #[test]
    fn k2_horizon_keeps_combining_marks_and_joiners_in_words() {
        // "e" + U+0301 (combining acute) and a ZWJ inside a word: one piece each, where
        // Llama 3's regex would cut before the mark.
        let k2 = words(PreTokenizerKind::K2Horizon, "cafe\u{301} a\u{200D}b");
        assert_eq!(k2.len(), 2, "{k2:?}");
        let llama = words(PreTokenizerKind::Llama3, "cafe\u{301}");
        assert!(llama.len() > 1, "{llama:?}");
    }

    #[test]
    fn qwen35_keeps_combining_marks_in_words_and_digits_alone() {
        // "e" + U+0301 stays in its word, where Qwen2's regex cuts before the mark; and a mark
        // after punctuation is not swallowed by the punctuation run.
        assert_eq!(words(PreTokenizerKind::Qwen35, "cafe\u{301}").len(), 1);
        assert!(words(PreTokenizerKind::Qwen2, "cafe\u{301}").len() > 1);
        assert_eq!(
            words(PreTokenizerKind::Qwen35, "x 1234"),
            ["x", "Ġ", "1", "2", "3", "4"]
        );
    }

    #[test]
    fn whitespace_lookahead_works() {
        assert_eq!(
            words(PreTokenizerKind::Gpt2, "a  b\n"),
            ["a", "Ġ", "Ġb", "Ċ"]
        );
    }

    #[test]
    fn known_names() {
        assert_eq!(
            PreTokenizerKind::from_gguf_name("qwen2"),
            Some(PreTokenizerKind::Qwen2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("deepseek-r1-qwen"),
            Some(PreTokenizerKind::Qwen2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("smollm"),
            Some(PreTokenizerKind::SmolLm)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("k2-horizon"),
            Some(PreTokenizerKind::K2Horizon)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name("qwen35"),
            Some(PreTokenizerKind::Qwen35)
        );
        assert_eq!(PreTokenizerKind::from_gguf_name("nonsense"), None);
    }
}
