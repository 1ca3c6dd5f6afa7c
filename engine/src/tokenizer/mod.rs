//! The tokenizer: text <-> token ids for byte-level BPE models (Qwen2, Llama 3, SmolLM, GPT-2
//! style vocabularies), built from GGUF metadata or from a Hugging Face `tokenizer.json`.
//!
//! Layout:
//! - `gguf` / `hf`: building a [`Tokenizer`] from each source.
//! - `pretok`: the pre-tokenizer regex families (llama.cpp's, chosen by `tokenizer.ggml.pre`).
//! - `special`: token kinds, special-token matching in text, end-of-generation detection.
//! - `bytes`: GPT-2's byte <-> character mapping.
//! - `stream`: [`StreamDecoder`], incremental detokenization for streaming output.
//!
//! The reference for GGUF models is llama.cpp: `encode` must give the same ids as
//! `llama_tokenize(text, add_special = false, parse_special)`. The special-token split and the
//! decoding of token pieces are done here (not by `tokenizers`) so both `parse_special` modes
//! and llama.cpp's token-type rules work from one loaded vocabulary; `tokenizers` runs the
//! pre-tokenizer and the BPE merges on the plain-text pieces.

mod bytes;
mod gguf;
mod hf;
mod pretok;
mod special;
mod stream;

pub use pretok::PreTokenizerKind;
pub use special::TokenKind;
pub use stream::StreamDecoder;

use crate::error::{EngineError, Result};
use special::Fragment;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

// Decode loops hand tokenizers to worker threads.
const _: () = {
    const fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Tokenizer>();
    send_sync::<StreamDecoder>();
};

/// A loaded tokenizer. Cloning is cheap (shared, immutable); it is `Send + Sync`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Pre-tokenizer + BPE for plain-text pieces. Special tokens never reach it as specials:
    /// GGUF-built ones have no added tokens, `tokenizer.json` ones have special-token
    /// matching switched off (`encode_special_tokens`).
    hf: tokenizers::Tokenizer,
    /// Raw token strings by id (byte-level stand-in characters for normal tokens).
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    /// Decoded bytes of every token, flattened: token `i` is `piece_data[offsets[i]..offsets[i+1]]`.
    piece_data: Vec<u8>,
    piece_offsets: Vec<u32>,
    /// Special tokens in matching order (longest text first).
    match_order: Vec<u32>,
    /// Sorted ids that end generation.
    eog: Vec<u32>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    model: String,
    pre: String,
}

/// What a source (GGUF or tokenizer.json) hands to [`Tokenizer::assemble`].
pub(crate) struct Parts {
    pub hf: tokenizers::Tokenizer,
    pub tokens: Vec<String>,
    pub kinds: Vec<TokenKind>,
    pub named: special::NamedIds,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub add_bos: bool,
    pub model: String,
    pub pre: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.inner.model)
            .field("pre", &self.inner.pre)
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.inner.bos_id)
            .field("eog", &self.inner.eog)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`).
    /// Only byte-level BPE (`tokenizer.ggml.model = gpt2`) is supported.
    pub fn from_gguf(
        content: &candle_core::quantized::gguf_file::Content,
        path: &Path,
    ) -> Result<Tokenizer> {
        gguf::build(content, path).map(Self::assemble)
    }

    /// Builds a tokenizer from a Hugging Face `tokenizer.json` (byte-level BPE only), taking
    /// BOS/EOS from `tokenizer_config.json` and extra EOS ids from a `generation_config.json`
    /// beside `tokenizer.json`, when present.
    pub fn from_files(
        tokenizer_json: &Path,
        tokenizer_config_json: Option<&Path>,
    ) -> Result<Tokenizer> {
        hf::build(tokenizer_json, tokenizer_config_json).map(Self::assemble)
    }

    fn assemble(mut parts: Parts) -> Tokenizer {
        let eog = special::fix_up_and_find_eog(&parts.tokens, &mut parts.kinds, &parts.named);
        let match_order = special::match_order(&parts.tokens, &parts.kinds);

        let mut piece_data = Vec::with_capacity(parts.tokens.len() * 6);
        let mut piece_offsets = Vec::with_capacity(parts.tokens.len() + 1);
        piece_offsets.push(0u32);
        for (token, kind) in parts.tokens.iter().zip(&parts.kinds) {
            match kind {
                // Special tokens are stored verbatim and shown verbatim.
                k if k.is_special() => piece_data.extend_from_slice(token.as_bytes()),
                // llama.cpp renders unused slots as nothing.
                TokenKind::Unused => {}
                _ => bytes::push_token_bytes(token, &mut piece_data),
            }
            piece_offsets.push(piece_data.len() as u32);
        }

        tracing::debug!(
            model = %parts.model,
            pre = %parts.pre,
            vocab = parts.tokens.len(),
            specials = match_order.len(),
            eog = ?eog,
            "tokenizer ready"
        );
        Tokenizer {
            inner: Arc::new(Inner {
                hf: parts.hf,
                tokens: parts.tokens,
                kinds: parts.kinds,
                piece_data,
                piece_offsets,
                match_order,
                eog,
                bos_id: parts.bos_id,
                eos_id: parts.eos_id,
                add_bos: parts.add_bos,
                model: parts.model,
                pre: parts.pre,
            }),
        }
    }

    /// Tokenizes `text` without adding BOS. With `parse_special`, control tokens written in the
    /// text (`<|im_start|>`) become their ids; without it their text is tokenized as ordinary
    /// text. User-defined tokens (Qwen's `<tool_call>`) are matched in both modes, as llama.cpp
    /// does. Chat prompts rendered from a template need `parse_special = true`; untrusted user
    /// text embedded in them should be tokenized with `false` so it cannot forge turns.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        self.encode_parts(text, parse_special, false)
    }

    /// [`encode`](Self::encode); with `guarded`, text marked by [`Tokenizer::protect`] is
    /// tokenized as text and its marks dropped.
    fn encode_parts(&self, text: &str, parse_special: bool, guarded: bool) -> Result<Vec<u32>> {
        let inner = &*self.inner;
        let fragments = special::partition(
            text,
            &inner.match_order,
            &inner.tokens,
            &inner.kinds,
            parse_special,
            guarded,
        );
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) => ids.push(id),
                Fragment::Text(t) => {
                    let t = if guarded {
                        special::unprotect(t)
                    } else {
                        t.into()
                    };
                    let enc = inner
                        .hf
                        .encode_fast(t.as_ref(), false)
                        .map_err(|e| EngineError::Tokenizer(format!("encoding failed: {e}")))?;
                    ids.extend_from_slice(enc.get_ids());
                }
            }
        }
        Ok(ids)
    }

    /// A message's content (what a user typed, what a model wrote) marked so that, rendered
    /// into a chat prompt and tokenized by [`Tokenizer::encode_chat`], it stays text: no
    /// special token is matched inside it, whatever it spells. Content without special-token
    /// text comes back unchanged.
    pub fn protect<'a>(&self, content: &'a str) -> Cow<'a, str> {
        self.protect_keeping(content, &[])
    }

    /// [`Tokenizer::protect`], but the texts in `keep` stay special tokens where the
    /// vocabulary has them.
    pub fn protect_keeping<'a>(&self, content: &'a str, keep: &[&str]) -> Cow<'a, str> {
        special::protect(content, &self.inner.match_order, &self.inner.tokens, keep)
    }

    /// A rendered text with the marks of [`Tokenizer::protect`] taken out: the text the model
    /// is shown.
    pub fn unprotect(rendered: &str) -> Cow<'_, str> {
        special::unprotect(rendered)
    }

    /// Tokenizes a chat prompt rendered from [protected](Tokenizer::protect) messages: the
    /// special tokens the template wrote are parsed, the messages' text is text. BOS as
    /// [`encode_prompt`](Self::encode_prompt) adds it.
    pub fn encode_chat(&self, rendered: &str) -> Result<Vec<u32>> {
        let body = self.encode_parts(rendered, true, true)?;
        Ok(self.with_bos(body))
    }

    /// Like [`encode`](Self::encode), but starts with BOS when the model asks for it
    /// (`add_bos_token`) and the text does not already (DeepSeek-R1 distills' and K2
    /// Horizon's templates write it themselves; a second one degrades the answer). Use this
    /// for a whole prompt.
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let body = self.encode(text, parse_special)?;
        Ok(self.with_bos(body))
    }

    fn with_bos(&self, body: Vec<u32>) -> Vec<u32> {
        match (self.inner.add_bos, self.inner.bos_id) {
            (true, Some(bos)) if body.first() != Some(&bos) => {
                let mut ids = Vec::with_capacity(body.len() + 1);
                ids.push(bos);
                ids.extend(body);
                ids
            }
            _ => body,
        }
    }

    /// Turns ids back into text. Special tokens are kept as their text (`<|im_end|>`), because a
    /// UI showing a raw trace should show them; strip them by id beforehand if unwanted. Byte
    /// sequences that are not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.piece_or_err(id)?);
        }
        Ok(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The bytes token `id` decodes to (possibly part of a UTF-8 character), or `None` when the
    /// id is outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let offsets = &self.inner.piece_offsets;
        let i = id as usize;
        if i + 1 >= offsets.len() {
            return None;
        }
        Some(&self.inner.piece_data[offsets[i] as usize..offsets[i + 1] as usize])
    }

    fn piece_or_err(&self, id: u32) -> Result<&[u8]> {
        self.token_bytes(id).ok_or_else(|| {
            EngineError::Tokenizer(format!(
                "token id {id} is outside the vocabulary ({} tokens)",
                self.vocab_size()
            ))
        })
    }

    /// The raw vocabulary string of a token (byte-level form, e.g. `Ġhello`; special tokens
    /// verbatim). Two tokenizers with equal strings for every id share a vocabulary.
    pub fn token_string(&self, id: u32) -> Option<&str> {
        self.inner.tokens.get(id as usize).map(String::as_str)
    }

    /// The kind of a token (normal, control, user-defined, ...).
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.inner.kinds.get(id as usize).copied()
    }

    /// The id of a token by its raw vocabulary string, if there is exactly such a token.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.hf.token_to_id(token)
    }

    /// Number of token ids (rows the embedding needs at least).
    pub fn vocab_size(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Whether generating `id` ends the turn (EOS, `<|im_end|>`, `<|endoftext|>`, ...).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.inner.eog.binary_search(&id).is_ok()
    }

    /// All ids that end generation, sorted.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.inner.eog
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }

    /// The model's declared EOS id (one of [`end_of_generation_ids`](Self::end_of_generation_ids)).
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos_id
    }

    /// Whether prompts start with BOS ([`encode_prompt`](Self::encode_prompt) adds it).
    pub fn add_bos(&self) -> bool {
        self.inner.add_bos
    }

    /// The tokenizer type in GGUF's naming: `gpt2` means byte-level BPE.
    pub fn tokenizer_model(&self) -> &str {
        &self.inner.model
    }

    /// The pre-tokenizer in use: a family name from GGUF (`qwen2`, `smollm`, ...) or
    /// `tokenizer.json` when the file's own pre-tokenizer is used.
    pub fn pre_tokenizer(&self) -> &str {
        &self.inner.pre
    }

    /// A streaming decoder over this tokenizer.
    pub fn stream_decoder(&self) -> StreamDecoder {
        StreamDecoder::new(self.clone())
    }
}
