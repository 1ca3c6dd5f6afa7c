//! Special tokens: their kinds, llama.cpp's text-based fix-ups, end-of-generation detection and
//! the split of input text at special tokens.
//!
//! Everything here mirrors llama.cpp (`src/llama-vocab.cpp`), the reference the golden tests
//! compare against, including its quirks: which tokens are matched in text depends on the
//! token *type* and on `parse_special`, not on what a chat template considers special.

use std::borrow::Cow;
use std::collections::HashSet;

/// llama.cpp's `llama_token_type`, as stored in GGUF `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Normal,
    /// The unknown token: matched in text only when special parsing is on.
    Unknown,
    /// Control tokens (`<|im_start|>`, `<|endoftext|>`): matched in text only when special
    /// parsing is on; otherwise their text is tokenized like any other text.
    Control,
    /// User-defined added tokens (Qwen's `<tool_call>`): always matched in text.
    UserDefined,
    /// Placeholder slots (padding rows of the embedding): never matched, decode to nothing.
    Unused,
    /// Raw byte tokens (`<0x0A>`), a SentencePiece concept; decoded like normal tokens here.
    Byte,
}

impl TokenKind {
    /// From the GGUF integer; 0 (undefined) and anything unknown count as normal, as in llama.cpp.
    pub fn from_gguf(ty: i64) -> Self {
        match ty {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }

    /// Tokens whose text is written verbatim (not byte-level encoded) in the vocabulary and
    /// which are searched for in input text before BPE runs.
    pub fn is_special(self) -> bool {
        matches!(self, Self::Unknown | Self::Control | Self::UserDefined)
    }
}

/// Texts llama.cpp treats as end-of-generation; a token with one of them is forced to be a
/// control token (some conversions mark them normal or user-defined) and ends generation.
/// The list follows the llama.cpp bundled with llama-cpp-python 0.3.36 (the goldens' version);
/// `</s>` matters for Qwen: its vocabulary has a normal `</s>` (128247) that llama.cpp turns
/// into an end token, matched in text when special parsing is on.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOS]",
    "<eos>",
    "</s>",
    "<turn|>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// Extra end-of-turn texts llama.cpp only uses to find the EOT token when metadata lacks one.
const EOT_ONLY_TEXTS: &[&str] = &["[EOT]", "<|end▁of▁sentence|>", "<｜end▁of▁sentence｜>"];

/// Fill-in-the-middle token texts per role, as llama.cpp detects them when the GGUF does not
/// name them. A detected FIM token is forced to be a control token; pad/repo/sep also end
/// generation (a code model that emits them has finished its file).
pub(crate) struct FimRole {
    pub metadata_key: &'static str,
    pub texts: &'static [&'static str],
    pub ends_generation: bool,
}

pub(crate) const FIM_ROLES: &[FimRole] = &[
    FimRole {
        metadata_key: "tokenizer.ggml.fim_pre_token_id",
        texts: &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
        ends_generation: false,
    },
    FimRole {
        metadata_key: "tokenizer.ggml.fim_suf_token_id",
        texts: &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
        ends_generation: false,
    },
    FimRole {
        metadata_key: "tokenizer.ggml.fim_mid_token_id",
        texts: &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
        ends_generation: false,
    },
    FimRole {
        metadata_key: "tokenizer.ggml.fim_pad_token_id",
        texts: &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        ends_generation: true,
    },
    FimRole {
        metadata_key: "tokenizer.ggml.fim_rep_token_id",
        texts: &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
        ends_generation: true,
    },
    FimRole {
        metadata_key: "tokenizer.ggml.fim_sep_token_id",
        texts: &["<|file_sep|>", "<fim-sep>", "<fim_sep>"],
        ends_generation: true,
    },
];

/// Ids named by metadata (GGUF keys or Hugging Face configs) that matter for fix-ups.
#[derive(Debug, Default, Clone)]
pub(crate) struct NamedIds {
    /// eos, eot, eom and any other id the metadata says ends generation.
    pub end_ids: Vec<u32>,
    /// Whether the metadata named an end-of-turn token (then EOT text detection is skipped).
    pub has_eot: bool,
    /// FIM roles the metadata named, by index into `FIM_ROLES`, with their ids.
    pub fim: Vec<(usize, u32)>,
}

/// Applies llama.cpp's text-based fix-ups to `kinds` and returns the end-of-generation ids.
pub(crate) fn fix_up_and_find_eog(
    tokens: &[String],
    kinds: &mut [TokenKind],
    named: &NamedIds,
) -> Vec<u32> {
    let mut eog: HashSet<u32> = HashSet::new();
    let force_control = |id: usize, kinds: &mut [TokenKind], why: &str| {
        if kinds[id] != TokenKind::Control {
            tracing::debug!(id, token = %tokens[id], "{why} token was not a control token; treating it as one (as llama.cpp does)");
            kinds[id] = TokenKind::Control;
        }
    };

    for (role_idx, role) in FIM_ROLES.iter().enumerate() {
        let named_ids: Vec<u32> = named
            .fim
            .iter()
            .filter(|(r, _)| *r == role_idx)
            .map(|(_, id)| *id)
            .collect();
        if named_ids.is_empty() {
            for (id, text) in tokens.iter().enumerate() {
                if role.texts.contains(&text.as_str()) {
                    force_control(id, kinds, "fill-in-the-middle");
                    if role.ends_generation {
                        eog.insert(id as u32);
                    }
                }
            }
        } else if role.ends_generation {
            eog.extend(named_ids);
        }
    }

    for (id, text) in tokens.iter().enumerate() {
        let t = text.as_str();
        if EOG_TEXTS.contains(&t) || (!named.has_eot && EOT_ONLY_TEXTS.contains(&t)) {
            force_control(id, kinds, "end-of-turn");
            eog.insert(id as u32);
        }
    }

    eog.extend(
        named
            .end_ids
            .iter()
            .copied()
            .filter(|&id| (id as usize) < tokens.len()),
    );
    let mut eog: Vec<u32> = eog.into_iter().collect();
    eog.sort_unstable();
    eog
}

/// Ids of the tokens searched for in text, longest text first (llama.cpp's
/// `cache_special_tokens`: the longest token wins where two overlap).
pub(crate) fn match_order(tokens: &[String], kinds: &[TokenKind]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..tokens.len() as u32)
        .filter(|&id| kinds[id as usize].is_special() && !tokens[id as usize].is_empty())
        .collect();
    // Stable sort: ties keep id order, so results never depend on hashing.
    ids.sort_by_key(|&id| std::cmp::Reverse(tokens[id as usize].len()));
    ids
}

/// A piece of input text: either plain text for BPE, or a special token matched verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Splits `text` at special tokens the way llama.cpp's `tokenizer_st_partition` does: for each
/// special token, longest first, every occurrence in every still-plain fragment is cut out.
/// Control and unknown tokens are only matched when `parse_special` is on. With `guarded`, an
/// occurrence right after [`PROTECT`] is text (see [`protect`]).
pub(crate) fn partition<'a>(
    text: &'a str,
    order: &[u32],
    tokens: &[String],
    kinds: &[TokenKind],
    parse_special: bool,
    guarded: bool,
) -> Vec<Fragment<'a>> {
    let mut fragments = vec![Fragment::Text(text)];
    if text.is_empty() {
        return fragments;
    }
    for &id in order {
        let kind = kinds[id as usize];
        if !parse_special && matches!(kind, TokenKind::Control | TokenKind::Unknown) {
            continue;
        }
        let needle = tokens[id as usize].as_str();
        // Cheap reject: most special tokens never occur in a given text.
        if !fragments
            .iter()
            .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
        {
            continue;
        }
        let mut next = Vec::with_capacity(fragments.len() + 2);
        for fragment in fragments {
            let Fragment::Text(mut rest) = fragment else {
                next.push(fragment);
                continue;
            };
            let mut from = 0;
            while let Some(found) = rest[from..].find(needle) {
                let pos = from + found;
                if guarded && rest[..pos].ends_with(PROTECT) {
                    from = pos + needle.chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                if pos > 0 {
                    next.push(Fragment::Text(&rest[..pos]));
                }
                next.push(Fragment::Token(id));
                rest = &rest[pos + needle.len()..];
                from = 0;
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        fragments = next;
    }
    fragments
}

/// Put before every character of a message's content that belongs to the text of a special
/// token (and before every U+E000 the content itself has), so that the content, rendered into
/// a chat prompt, is tokenized as text: what a user typed or a model wrote cannot become a
/// control token (`<|im_end|>` in a problem would end the user's turn and forge the next).
/// U+E000 is the first private-use character; no template writes it.
pub(crate) const PROTECT: char = '\u{E000}';

/// `text` with [`PROTECT`] before every character inside an occurrence of any special token
/// of `order` (user-defined ones too: inside content they are text) but those spelled as in
/// `keep`, and before every [`PROTECT`]; unchanged where it has neither.
pub(crate) fn protect<'a>(
    text: &'a str,
    order: &[u32],
    tokens: &[String],
    keep: &[&str],
) -> Cow<'a, str> {
    let mut covered: Option<Vec<bool>> = None;
    for &id in order {
        let needle = tokens[id as usize].as_str();
        if keep.contains(&needle) {
            continue;
        }
        let step = needle.chars().next().map_or(1, char::len_utf8);
        let mut from = 0;
        while let Some(found) = text[from..].find(needle) {
            let start = from + found;
            let marks = covered.get_or_insert_with(|| vec![false; text.len()]);
            marks[start..start + needle.len()].fill(true);
            from = start + step;
        }
    }
    if covered.is_none() && !text.contains(PROTECT) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (at, c) in text.char_indices() {
        if c == PROTECT || covered.as_ref().is_some_and(|m| m[at]) {
            out.push(PROTECT);
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// `text` with the marks of [`protect`] taken out: each [`PROTECT`] is dropped and the
/// character after it kept as it is.
pub(crate) fn unprotect(text: &str) -> Cow<'_, str> {
    if !text.contains(PROTECT) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            PROTECT => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> (Vec<String>, Vec<TokenKind>) {
        let tokens = [
            "a",
            "<|im_end|>",
            "<tool_call>",
            "<|im_start|>",
            "<|fim_pad|>",
        ]
        .map(String::from)
        .to_vec();
        let kinds = vec![
            TokenKind::Normal,
            TokenKind::Control,
            TokenKind::UserDefined,
            TokenKind::Control,
            TokenKind::UserDefined,
        ];
        (tokens, kinds)
    }

    #[test]
    fn control_tokens_only_match_with_special_parsing() {
        let (tokens, kinds) = vocab();
        let order = match_order(&tokens, &kinds);
        let text = "x<|im_end|>y<tool_call>z";
        assert_eq!(
            partition(text, &order, &tokens, &kinds, true, false),
            [
                Fragment::Text("x"),
                Fragment::Token(1),
                Fragment::Text("y"),
                Fragment::Token(2),
                Fragment::Text("z")
            ]
        );
        assert_eq!(
            partition(text, &order, &tokens, &kinds, false, false),
            [
                Fragment::Text("x<|im_end|>y"),
                Fragment::Token(2),
                Fragment::Text("z")
            ]
        );
    }

    #[test]
    fn protected_text_matches_no_special_token_and_comes_back_unchanged() {
        let (tokens, kinds) = vocab();
        let order = match_order(&tokens, &kinds);
        let typed = "x<|im_end|>y<tool_call>\u{E000}z";
        let protected = protect(typed, &order, &tokens, &[]);
        assert_eq!(unprotect(&protected), typed);
        // The template's own markers around the content are still parsed; nothing inside is.
        let rendered = format!("<|im_start|>{protected}<|im_end|>");
        let parts = partition(&rendered, &order, &tokens, &kinds, true, true);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0], Fragment::Token(3));
        assert!(matches!(parts[1], Fragment::Text(t) if unprotect(t) == typed));
        assert_eq!(parts[2], Fragment::Token(1));
        // Content with nothing to protect is not copied; kept tokens stay special.
        assert!(matches!(
            protect("plain", &order, &tokens, &[]),
            Cow::Borrowed("plain")
        ));
        assert_eq!(
            protect("a<tool_call>", &order, &tokens, &["<tool_call>"]),
            "a<tool_call>"
        );
    }

    #[test]
    fn eog_includes_both_qwen_end_tokens_and_fim_pad() {
        let (tokens, mut kinds) = vocab();
        let named = NamedIds {
            end_ids: vec![1],
            ..Default::default()
        };
        let eog = fix_up_and_find_eog(&tokens, &mut kinds, &named);
        assert_eq!(eog, [1, 4]);
        assert_eq!(kinds[4], TokenKind::Control);
        assert_eq!(kinds[2], TokenKind::UserDefined);
    }
}
