//! Reasoning traces: every family's think tags in one table, the functions that find them in
//! finished text, and a streaming splitter that separates a solution's reasoning from its
//! answer as the text arrives. Everything that reads think tags (the pipeline, the judge's
//! view, the plan, the remote backend's reasoning fields, the engine's prompt prefill) asks
//! this module, so a new family is one row of [`THINK_TAGS`].

use k2_protocol::{Effort, TextPart};

/// Every reasoning family's think tags, `(opening, closing)`: `<think>` (Qwen3, DeepSeek-R1
/// distills, QwQ, K2-Think) and K2 Horizon's three effort levels. A model may close a block
/// with another family's closing tag, so a reader accepts any closing tag of this table after
/// any opening one; a writer (budget forcing) closes with the opening tag's own partner.
pub const THINK_TAGS: &[(&str, &str)] =
    &[THINK, K2_HORIZON_HIGH, K2_HORIZON_MEDIUM, K2_HORIZON_LOW];

/// `<think>`: Qwen3, DeepSeek-R1 distills, QwQ, K2-Think.
const THINK: (&str, &str) = ("<think>", "</think>");
/// K2 Horizon's tags, one per reasoning effort (its template picks one by `reasoning_effort`).
const K2_HORIZON_HIGH: (&str, &str) = ("<ifm|think>", "</ifm|think>");
const K2_HORIZON_MEDIUM: (&str, &str) = ("<ifm|think_fast>", "</ifm|think_fast>");
const K2_HORIZON_LOW: (&str, &str) = ("<ifm|think_faster>", "</ifm|think_faster>");

/// K2 Horizon's think tags for `effort`, `(opening, closing)`.
pub fn k2_horizon_tags(effort: Effort) -> (&'static str, &'static str) {
    match effort {
        Effort::High => K2_HORIZON_HIGH,
        Effort::Medium => K2_HORIZON_MEDIUM,
        Effort::Low => K2_HORIZON_LOW,
    }
}

/// The tags a writer uses when it has no family of its own to follow (the remote backend
/// wrapping a server's separate reasoning field).
pub const DEFAULT_THINK_TAGS: (&str, &str) = THINK;

fn opening_tags() -> impl Iterator<Item = &'static str> {
    THINK_TAGS.iter().map(|(open, _)| *open)
}

fn closing_tags() -> impl Iterator<Item = &'static str> {
    THINK_TAGS.iter().map(|(_, close)| *close)
}

/// A tag found in a text: where it starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    at: usize,
    len: usize,
}

impl Found {
    fn end(self) -> usize {
        self.at + self.len
    }
}

/// The earliest occurrence of any of `tags` (the longest tag where two start together).
fn find_first(text: &str, tags: impl Iterator<Item = &'static str>) -> Option<Found> {
    tags.filter_map(|tag| text.find(tag).map(|at| Found { at, len: tag.len() }))
        .min_by_key(|f| (f.at, std::cmp::Reverse(f.len)))
}

/// The last occurrence of any of `tags`.
fn find_last(text: &str, tags: impl Iterator<Item = &'static str>) -> Option<Found> {
    tags.filter_map(|tag| text.rfind(tag).map(|at| Found { at, len: tag.len() }))
        .max_by_key(|f| (f.end(), f.len))
}

/// The opening tag `text` starts with, if any.
fn opening_prefix(text: &str) -> Option<&'static str> {
    opening_tags()
        .filter(|tag| text.starts_with(tag))
        .max_by_key(|tag| tag.len())
}

/// The opening tag a rendered prompt ends with (trailing whitespace aside), if any: the
/// template (DeepSeek-R1 distills, Qwen3 thinking variants) or the engine (K2 Horizon's effort
/// tags) has already opened the reasoning block, so the model's output starts inside it and
/// holds only the closing tag.
pub fn prompt_opens_reasoning(prompt: &str) -> Option<&'static str> {
    let tail = prompt.trim_end();
    opening_tags()
        .filter(|tag| tail.ends_with(tag))
        .max_by_key(|tag| tag.len())
}

/// The text outside the reasoning: after the last closing tag if there is one (an opening tag
/// before it is optional: a template may have written it into the prompt), else before an
/// unclosed opening tag, else everything.
pub fn outside_reasoning(text: &str) -> &str {
    if let Some(close) = find_last(text, closing_tags()) {
        return &text[close.end()..];
    }
    match find_first(text, opening_tags()) {
        Some(open) => &text[..open.at],
        None => text,
    }
}

/// The text after the last closing tag, or all of it when no reasoning block was closed.
pub fn after_reasoning(text: &str) -> &str {
    find_last(text, closing_tags()).map_or(text, |close| &text[close.end()..])
}

/// `text` without any think tag (the words of the trace kept).
pub fn without_think_tags(text: &str) -> String {
    THINK_TAGS
        .iter()
        .flat_map(|(open, close)| [*open, *close])
        .fold(text.to_owned(), |acc, tag| acc.replace(tag, ""))
}

/// Whether text is inside a think block, and which closing tag partners its opener (the tag
/// a writer closes it with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkState {
    Outside,
    Inside { closer: &'static str },
}

impl ThinkState {
    /// Inside the block `opening` (a tag of [`THINK_TAGS`]) opens; outside for any other text.
    pub fn opened_by(opening: &str) -> ThinkState {
        THINK_TAGS
            .iter()
            .find(|(open, _)| *open == opening)
            .map_or(ThinkState::Outside, |&(_, closer)| ThinkState::Inside {
                closer,
            })
    }
}

/// Follows think blocks, any number of them anywhere, through text that arrives in pieces.
/// Where [`ThinkSplitter`] separates a leading block from the answer, this only says whether
/// the text so far ends inside a block (the engine's thinking budget counts tokens by it). A
/// block opened by any opening tag is closed by any closing tag, as models mix them.
#[derive(Debug, Clone)]
pub struct ThinkTracker {
    state: ThinkState,
    /// The tail of the text that could still grow into a tag.
    carry: String,
}

impl ThinkTracker {
    pub fn new(state: ThinkState) -> Self {
        ThinkTracker {
            state,
            carry: String::new(),
        }
    }

    pub fn state(&self) -> ThinkState {
        self.state
    }

    /// Reads the next piece of text, moving in and out of blocks at every tag in it.
    pub fn push(&mut self, piece: &str) {
        self.carry.push_str(piece);
        loop {
            let next = match self.state {
                ThinkState::Outside => find_first(&self.carry, opening_tags()).map(|tag| {
                    let opened = ThinkState::opened_by(&self.carry[tag.at..tag.end()]);
                    (tag.end(), opened)
                }),
                ThinkState::Inside { .. } => find_first(&self.carry, closing_tags())
                    .map(|tag| (tag.end(), ThinkState::Outside)),
            };
            let Some((end, state)) = next else { break };
            self.state = state;
            self.carry.drain(..end);
        }
        let keep = opening_tags()
            .chain(closing_tags())
            .map(|tag| partial_suffix(&self.carry, tag))
            .max()
            .unwrap_or(0);
        self.carry.drain(..self.carry.len() - keep);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace seen yet: the text may still open with an opening tag. `inside`:
    /// the prompt already opened the block, so text without a tag is reasoning too.
    Start {
        inside: bool,
    },
    Reasoning,
    Answer,
}

/// Streaming splitter; feed deltas with [`ThinkSplitter::push`], then call `finish`.
///
/// Accepts any opening tag of [`THINK_TAGS`] at the start and ends the reasoning at the first
/// closing tag of the table, whether or not it matches the opening one.
#[derive(Debug)]
pub struct ThinkSplitter {
    state: State,
    pending: String,
}

impl Default for ThinkSplitter {
    fn default() -> Self {
        ThinkSplitter {
            state: State::Start { inside: false },
            pending: String::new(),
        }
    }
}

impl ThinkSplitter {
    /// For text that opens its own reasoning block (or has none).
    pub fn new() -> Self {
        Self::default()
    }

    /// For text generated after a prompt that already opened the block (see
    /// [`prompt_opens_reasoning`]): everything is reasoning until a closing tag. A repeated
    /// opening tag at the start is dropped.
    pub fn inside_reasoning() -> Self {
        ThinkSplitter {
            state: State::Start { inside: true },
            pending: String::new(),
        }
    }

    /// Returns the pieces of text that are now certain, with the part each belongs to.
    pub fn push(&mut self, delta: &str) -> Vec<(TextPart, String)> {
        self.pending.push_str(delta);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Start { inside } => {
                    let trimmed = self.pending.trim_start();
                    if let Some(tag) = opening_prefix(trimmed) {
                        let at = self.pending.len() - trimmed.len() + tag.len();
                        self.pending.drain(..at);
                        self.state = State::Reasoning;
                    } else if opening_tags().any(|tag| tag.starts_with(trimmed)) {
                        return out; // "", "<th", "<ifm|": undecided
                    } else if inside {
                        self.state = State::Reasoning;
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Reasoning => {
                    if let Some(close) = find_first(&self.pending, closing_tags()) {
                        let reasoning: String = self.pending.drain(..close.at).collect();
                        self.pending.drain(..close.len);
                        push_piece(&mut out, TextPart::Reasoning, reasoning);
                        self.state = State::Answer;
                    } else {
                        let keep = closing_tags()
                            .map(|tag| partial_suffix(&self.pending, tag))
                            .max()
                            .unwrap_or(0);
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
            State::Reasoning | State::Start { inside: true } => TextPart::Reasoning,
            State::Start { inside: false } | State::Answer => TextPart::Answer,
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

    fn state_after(pieces: &[&str]) -> ThinkState {
        let mut tags = ThinkTracker::new(ThinkState::Outside);
        for piece in pieces {
            tags.push(piece);
        }
        tags.state()
    }

    #[test]
    fn tags_are_followed_across_pieces_and_families() {
        let inside = ThinkState::Inside { closer: "</think>" };
        assert_eq!(state_after(&["<th", "ink>", "\nhmm"]), inside);
        assert_eq!(state_after(&["<think>a</thi", "nk>b"]), ThinkState::Outside);
        assert_eq!(
            state_after(&["x <ifm|think_fast>", "y"]),
            ThinkState::Inside {
                closer: "</ifm|think_fast>"
            }
        );
        // Any closing tag ends any block; the next opener starts a new one.
        assert_eq!(state_after(&["<ifm|think>a</think>b<think>c"]), inside);
        assert_eq!(state_after(&["no tags at all, é ü"]), ThinkState::Outside);
        assert_eq!(state_after(&["</think> stray closer"]), ThinkState::Outside);
    }

    #[test]
    fn multibyte_text_around_tags_never_splits_a_character() {
        let mut tags = ThinkTracker::new(ThinkState::Outside);
        for piece in ["日本語のテキスト", "<thi", "nk>", "思考", "中"] {
            tags.push(piece);
        }
        assert_eq!(tags.state(), ThinkState::Inside { closer: "</think>" });
    }

    fn split_with(mut s: ThinkSplitter, pieces: &[&str]) -> (String, String) {
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

    fn split(pieces: &[&str]) -> (String, String) {
        split_with(ThinkSplitter::new(), pieces)
    }

    /// Every way of cutting `text` into two deltas gives the same split as the whole text.
    fn assert_split_anywhere(splitter: fn() -> ThinkSplitter, text: &str, expected: (&str, &str)) {
        let expected = (expected.0.to_owned(), expected.1.to_owned());
        for (cut, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let got = split_with(splitter(), &[&text[..cut], &text[cut..]]);
            assert_eq!(got, expected, "{text:?} cut at {cut}");
        }
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
    fn every_familys_opening_tag_and_any_closing_tag_split_the_text() {
        for (open, _) in THINK_TAGS {
            for (_, close) in THINK_TAGS {
                let text = format!("\n{open}2+2 is 4{close}So 4.");
                assert_split_anywhere(ThinkSplitter::new, &text, ("2+2 is 4", "So 4."));
            }
        }
    }

    #[test]
    fn a_prompt_that_opened_the_block_makes_untagged_text_reasoning() {
        assert_split_anywhere(
            ThinkSplitter::inside_reasoning,
            "\nadd them</think>\n\nSo 4.",
            ("\nadd them", "\n\nSo 4."),
        );
        // A model that repeats the prefilled tag does not leave it in its trace.
        assert_split_anywhere(
            ThinkSplitter::inside_reasoning,
            "<ifm|think_fast>quick</ifm|think_fast>4",
            ("quick", "4"),
        );
        // Cut off before closing: all of it is reasoning.
        assert_eq!(
            split_with(ThinkSplitter::inside_reasoning(), &["still ", "going"]),
            ("still going".into(), "".into())
        );
        assert_eq!(
            split_with(ThinkSplitter::inside_reasoning(), &["\n"]),
            ("\n".into(), "".into())
        );
    }

    #[test]
    fn text_without_a_think_tag_is_all_answer() {
        assert_eq!(
            split(&["We add ", "the numbers."]),
            ("".into(), "We add the numbers.".into())
        );
        assert_eq!(split(&["<b>bold</b>"]), ("".into(), "<b>bold</b>".into()));
        assert_eq!(
            split(&["<ifm|tool_calls>x"]),
            ("".into(), "<ifm|tool_calls>x".into())
        );
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
        assert_eq!(
            split(&["<ifm|think>a </", "ifm| b</ifm|think>x"]),
            ("a </ifm| b".into(), "x".into())
        );
    }

    #[test]
    fn prompts_ending_in_an_opening_tag_are_recognized() {
        assert_eq!(
            prompt_opens_reasoning("<｜Assistant｜><think>\n"),
            Some("<think>")
        );
        assert_eq!(
            prompt_opens_reasoning("<|ifm|im_start|>assistant\n<ifm|think_faster>"),
            Some("<ifm|think_faster>")
        );
        // Thinking switched off: the block is already closed.
        assert_eq!(
            prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"),
            None
        );
        // A tag mentioned earlier in the prompt is not an open block.
        assert_eq!(
            prompt_opens_reasoning("Reason inside <think> tags.<|im_start|>assistant\n"),
            None
        );
    }

    #[test]
    fn finished_text_is_read_with_every_familys_tags() {
        assert_eq!(outside_reasoning("<ifm|think>x</ifm|think> 4"), " 4");
        assert_eq!(outside_reasoning("x</think>4"), "4");
        assert_eq!(
            outside_reasoning("before<ifm|think_fast>never closed"),
            "before"
        );
        assert_eq!(outside_reasoning("plain"), "plain");
        // A mismatched closing tag still closes.
        assert_eq!(outside_reasoning("<ifm|think>x</think>4"), "4");
        assert_eq!(
            after_reasoning("<think>x {\"verdict\"}"),
            "<think>x {\"verdict\"}"
        );
        assert_eq!(after_reasoning("a</ifm|think_faster>b</think>c"), "c");
        assert_eq!(
            without_think_tags("<ifm|think_fast>a</ifm|think_fast> <think>b</think>"),
            "a b"
        );
    }
}
