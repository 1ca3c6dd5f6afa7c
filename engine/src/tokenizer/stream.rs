//! Streaming detokenization: turn ids into text as they are generated, never emitting half a
//! UTF-8 character.
//!
//! A byte-level BPE token is a run of *bytes*, and one character (an emoji, a CJK ideograph)
//! can be split over two or three tokens. The decoder keeps the bytes of an unfinished
//! character (at most 3) and emits everything before it. Each `push` costs only the new
//! token's bytes, so a long generation stays linear.

use super::Tokenizer;

/// Incremental decoder; get one from [`Tokenizer::stream_decoder`].
///
/// Concatenating every `push` result and then `finish()` gives exactly `decode(all ids)`.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    /// Bytes not emitted yet: at most an incomplete UTF-8 sequence between pushes.
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new(tokenizer: Tokenizer) -> Self {
        StreamDecoder {
            tokenizer,
            pending: Vec::with_capacity(8),
        }
    }

    /// Adds one token; returns the text it completes, or `None` when it completes nothing yet
    /// (e.g. the first byte of a 4-byte emoji). An id outside the vocabulary contributes
    /// nothing (and is logged): `decode` would reject it, but a stream should keep going.
    pub fn push(&mut self, id: u32) -> Option<String> {
        match self.tokenizer.token_bytes(id) {
            Some(bytes) => self.pending.extend_from_slice(bytes),
            None => {
                tracing::warn!(
                    id,
                    "stream decoder: token id outside the vocabulary ignored"
                );
                return None;
            }
        }
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // Safe: `from_utf8` just validated this range.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or(""));
                    match e.error_len() {
                        // Definitely invalid bytes: replace them, as `from_utf8_lossy` would.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start = valid + n;
                        }
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        (!out.is_empty()).then_some(out)
    }

    /// Text still held back (an unfinished character), as U+FFFD; ends the stream.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }

    /// Whether bytes of an unfinished character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
