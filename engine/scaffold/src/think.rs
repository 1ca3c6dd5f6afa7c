//! Splitting a streamed solution into its reasoning (`<think>…</think>`) and its answer part,
//! as the text arrives. Tags may be split across deltas, so a possible partial tag is held back
//! until the next delta decides it.

use k2_protocol::TextPart;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Every reasoning family's think tags, `(opening, closing)`: `<think>` (Qwen3, DeepSeek-R1
/// distills, QwQ, K2-Think) and K2 Horizon's three effort levels. A model may close a block
/// with another family's closing tag, so a reader accepts any closing tag of this table after
/// any opening one; a writer (budget forcing) closes with the opening tag's own partner.
pub const THINK_TAGS: &[(&str, &str)] = &[
    ("<think>", "</think>"),
    ("<ifm|think>", "</ifm|think>"),
    ("<ifm|think_fast>", "</ifm|think_fast>"),
    ("<ifm|think_faster>", "</ifm|think_faster>"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace seen yet: the text may still open with `<think>`.
    Start,
    Reasoning,
    Answer,
}

/// Streaming splitter; feed deltas with [`ThinkSplitter::push`], then call `finish`.
#[derive(Debug)]
pub struct ThinkSplitter {
    state: State,
    pending: String,
}

impl Default for ThinkSplitter {
    fn default() -> Self {
        ThinkSplitter {
            state: State::Start,
            pending: String::new(),
        }
    }
}

impl ThinkSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the pieces of text that are now certain, with the part each belongs to.
    pub fn push(&mut self, delta: &str) -> Vec<(TextPart, String)> {
        self.pending.push_str(delta);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if trimmed.starts_with(OPEN) {
                        let at = self.pending.len() - trimmed.len() + OPEN.len();
                        self.pending.drain(..at);
                        self.state = State::Reasoning;
                    } else if OPEN.starts_with(trimmed) {
                        return out; // "", "<th", ...: undecided
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Reasoning => {
                    if let Some(at) = self.pending.find(CLOSE) {
                        let reasoning: String = self.pending.drain(..at).collect();
                        self.pending.drain(..CLOSE.len());
                        push_piece(&mut out, TextPart::Reasoning, reasoning);
                        self.state = State::Answer;
                    } else {
                        let keep = partial_suffix(&self.pending, CLOSE);
                        let ready: String =
                            self.pending.drain(..self.pending.len() - keep).collect();
                        push_piece(&mut out, TextPart::Reasoning, ready);
                        return out;
                    }
                }
                State::Answer => {
                    let rest = std::mem::take(&mut self.pending);
                    push_piece(&mut out, TextPart::Answer, rest);
                    return out;
                }
            }
        }
    }

    /// Releases anything held back (the stream ended).
    pub fn finish(&mut self) -> Vec<(TextPart, String)> {
        let part = match self.state {
            State::Reasoning => TextPart::Reasoning,
            State::Start | State::Answer => TextPart::Answer,
        };
        let mut out = Vec::new();
        push_piece(&mut out, part, std::mem::take(&mut self.pending));
        out
    }
}

fn push_piece(out: &mut Vec<(TextPart, String)>, part: TextPart, text: String) {
    if !text.is_empty() {
        out.push((part, text));
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            n <= text.len()
                && text.is_char_boundary(text.len() - n)
                && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str]) -> (String, String) {
        let mut s = ThinkSplitter::new();
        let (mut reasoning, mut answer) = (String::new(), String::new());
        let all = pieces.iter().flat_map(|p| s.push(p)).collect::<Vec<_>>();
        for (part, text) in all.into_iter().chain(s.finish()) {
            match part {
                TextPart::Reasoning => reasoning.push_str(&text),
                TextPart::Answer => answer.push_str(&text),
            }
        }
        (reasoning, answer)
    }

    #[test]
    fn tags_split_across_deltas_are_recognized() {
        assert_eq!(
            split(&[
                "<th",
                "ink>2+2",
                " is 4</th",
                "ink>The answer is \\boxed{4}."
            ]),
            ("2+2 is 4".into(), "The answer is \\boxed{4}.".into())
        );
    }

    #[test]
    fn text_without_a_think_tag_is_all_answer() {
        assert_eq!(
            split(&["We add ", "the numbers."]),
            ("".into(), "We add the numbers.".into())
        );
        assert_eq!(split(&["<b>bold</b>"]), ("".into(), "<b>bold</b>".into()));
    }

    #[test]
    fn leading_whitespace_before_think_is_dropped_and_unclosed_reasoning_stays_reasoning() {
        assert_eq!(
            split(&["\n <think>still going"]),
            ("still going".into(), "".into())
        );
    }

    #[test]
    fn a_lone_less_than_sign_in_reasoning_is_not_swallowed() {
        assert_eq!(
            split(&["<think>a <", " b</think>x"]),
            ("a < b".into(), "x".into())
        );
    }
}
