//! The pairwise judge: reading its verdicts ([`parse_verdict`]) and comparing two candidates
//! fairly ([`compare`]).
//!
//! K2-Think asks once, in one order, for a verdict before any reasoning, with no way to call a
//! tie. Here the judge reasons first, may call a tie, and is asked in both orders: only a
//! winner that survives swapping the solutions counts, so a position-biased judge produces
//! ties instead of arbitrary winners. Decisions that need no model are made without one:
//! finished beats unfinished (and cut off by a limit beats looped), and equivalent final
//! answers are a tie.

use k2_protocol::{CandidateId, FinishReason, Verdict};

use crate::error::Result;
use k2_answer as answer;

/// One candidate as the judge and the selection see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrant {
    pub id: CandidateId,
    /// The full generated text (reasoning included; prompts show only the visible part).
    pub text: String,
    /// The extracted final answer, if any.
    pub answer: Option<String>,
    /// How its generation ended.
    pub finish: FinishReason,
}

impl Entrant {
    /// Whether the model ended the solution itself (not cut by a limit, a loop or a cancel).
    pub fn finished(&self) -> bool {
        self.finish.is_complete()
    }

    /// How far the candidate got, for choices made without a judge: finished, then cut off
    /// by a limit (the reasoning may have been sound, it ran out of room), then looped or
    /// cancelled (a loop is degenerate text: nothing after it was going anywhere).
    pub fn standing(&self) -> u8 {
        match self.finish {
            FinishReason::Complete => 2,
            FinishReason::MaxTokens | FinishReason::ContextFull => 1,
            FinishReason::Loop | FinishReason::Cancelled => 0,
        }
    }
}

/// What a judge model wrote, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeReply {
    pub raw: String,
    pub tokens: usize,
}

/// Something that compares two candidates shown as "Solution A" (`first`) and "Solution B"
/// (`second`). A model behind [`crate::scaffold::prompts::judge_messages`] in the pipeline; a
/// script in tests.
pub trait PairJudge {
    fn judge(&mut self, problem: &str, first: &Entrant, second: &Entrant) -> Result<JudgeReply>;
}

/// A verdict about the positions as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    A,
    B,
    Tie,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedVerdict {
    /// `None`: no verdict could be read (off-format, truncated, garbage).
    pub choice: Option<Choice>,
    pub explanation: String,
}

/// Longest explanation kept from one judge reply (characters).
const EXPLANATION_CHARS: usize = 400;
/// Only the end of a reply is searched: the verdict comes last, and this bounds the work on
/// runaway output.
const SEARCH_CHARS: usize = 16_000;
/// At most this many `{` are tried as the start of a JSON object.
const MAX_OBJECT_STARTS: usize = 256;

/// Keys that carry the verdict, most explicit first. `index` is the original K2-Think's
/// 0-based field; numbers under any other key are read 1-based ("Solution 1").
const VERDICT_KEYS: [&str; 9] = [
    "verdict",
    "winner",
    "choice",
    "decision",
    "better",
    "better_solution",
    "preferred",
    "best",
    "index",
];
const EXPLANATION_KEYS: [&str; 5] = [
    "explanation",
    "reasoning",
    "rationale",
    "reason",
    "analysis",
];

/// Reads a judge reply. Tries, in order:
/// 1. the last JSON-like object with a verdict key (code fences, single quotes, bare keys,
///    trailing commas, extra keys and a cut-off end are tolerated). If its verdict value is
///    not A/B/tie (say `"C"`), the choice is `None` and the prose is *not* searched: a judge
///    that answered off the format is not second-guessed;
/// 2. textual forms: "Verdict: B", "Winner: Solution A", `**Tie**`, `\boxed{A}`, "Solution A is
///    better/correct", "it's a tie" (the last one in the text wins);
/// 3. otherwise `None`.
///
/// The judge's own reasoning, if any, is skipped when a closing think tag (of any family)
/// closes it.
pub fn parse_verdict(text: &str) -> ParsedVerdict {
    let visible = tail_str(crate::think::after_reasoning(text), SEARCH_CHARS);

    if let Some(object) = last_verdict_object(visible) {
        let choice = VERDICT_KEYS.iter().find_map(|key| {
            object
                .get(key)
                .map(|value| choice_from_value(value, *key == "index"))
        });
        let explanation = EXPLANATION_KEYS
            .iter()
            .find_map(|key| match object.get(key) {
                Some(Value::Str(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        return ParsedVerdict {
            choice: choice.flatten(),
            explanation: shorten(&explanation),
        };
    }

    ParsedVerdict {
        choice: textual_choice(visible),
        explanation: shorten(visible.trim()),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing two candidates

/// Compares `a` and `b` and returns the verdict with `first = a.id`, `second = b.id`.
///
/// - one finished and one not: the finished one wins, no call; both unfinished: the one
///   cut off by a limit wins over one that looped, else a tie, no call;
/// - equivalent final answers: tie, no call (there is nothing to decide);
/// - otherwise the judge is asked with (a, b) and again with (b, a); the same winner both times
///   wins, anything else (a contradiction, a tie, an unreadable reply) is a tie.
///
/// Errors from the judge (a failed or cancelled generation) are returned as they are.
pub fn compare(
    judge: &mut dyn PairJudge,
    problem: &str,
    a: &Entrant,
    b: &Entrant,
) -> Result<Verdict> {
    let verdict = |winner: Option<CandidateId>, rationale: String| Verdict {
        first: a.id,
        second: b.id,
        winner,
        rationale,
    };
    if !(a.finished() && b.finished()) {
        let (ahead, behind) = match a.standing().cmp(&b.standing()) {
            std::cmp::Ordering::Equal => {
                return Ok(verdict(
                    None,
                    "Neither solution finished, so there is nothing to prefer.".into(),
                ))
            }
            std::cmp::Ordering::Greater => (a, b),
            std::cmp::Ordering::Less => (b, a),
        };
        // Numbered from 1, as people (and the UI) count candidates.
        let (first, second) = (ahead.id + 1, behind.id + 1);
        let why = if ahead.finished() {
            format!("Candidate {first} finished and candidate {second} did not")
        } else if behind.finish == FinishReason::Loop {
            format!("Candidate {first} was cut off by a limit and candidate {second} looped")
        } else {
            format!("Candidate {first} was cut off by a limit and candidate {second} was cancelled")
        };
        return Ok(verdict(
            Some(ahead.id),
            format!("{why}, so {first} wins without judging."),
        ));
    }
    if let (Some(x), Some(y)) = (&a.answer, &b.answer) {
        if answer::equivalent(x, y) {
            return Ok(verdict(
                None,
                format!("Both reach the same final answer ({x}), so there is nothing to decide."),
            ));
        }
    }

    let forward = parse_verdict(&judge.judge(problem, a, b)?.raw);
    let backward = parse_verdict(&judge.judge(problem, b, a)?.raw);
    let pick = |choice: Option<Choice>, shown_a: &Entrant, shown_b: &Entrant| match choice {
        Some(Choice::A) => Some(shown_a.id),
        Some(Choice::B) => Some(shown_b.id),
        _ => None,
    };
    let w1 = pick(forward.choice, a, b);
    let w2 = pick(backward.choice, b, a);
    let winner = match (w1, w2) {
        (Some(x), Some(y)) if x == y => Some(x),
        _ => None,
    };
    let conclusion = match (winner, w1, w2) {
        // Numbered from 1, as people (and the UI) count candidates.
        (Some(w), _, _) => format!("Candidate {} wins in both orders.", w + 1),
        (None, Some(_), Some(_)) => "The two orders disagree, so it is a tie.".to_owned(),
        _ => "No winner in both orders, so it is a tie.".to_owned(),
    };
    let rationale = format!(
        "{}\n{}\n{}",
        describe_order(a, b, &forward),
        describe_order(b, a, &backward),
        conclusion
    );
    Ok(verdict(winner, rationale))
}

/// One line per order asked: which candidate was shown first, what the judge said and why.
fn describe_order(shown_a: &Entrant, shown_b: &Entrant, v: &ParsedVerdict) -> String {
    let said = match v.choice {
        Some(Choice::A) => format!("candidate {} is better", shown_a.id + 1),
        Some(Choice::B) => format!("candidate {} is better", shown_b.id + 1),
        Some(Choice::Tie) => "tie".to_owned(),
        None => "no readable verdict".to_owned(),
    };
    let why = if v.explanation.is_empty() {
        String::new()
    } else {
        format!(": {}", v.explanation)
    };
    format!(
        "With candidate {} as A and {} as B: {said}{why}",
        shown_a.id + 1,
        shown_b.id + 1
    )
}

// ---------------------------------------------------------------------------------------------
// Reading verdict values

fn choice_from_value(value: &Value, zero_based: bool) -> Option<Choice> {
    match value {
        Value::Num(n) => match (zero_based, *n) {
            (true, 0) => Some(Choice::A),
            (true, 1) => Some(Choice::B),
            // Only a 0-based reading makes sense of 0.
            (false, 0) | (false, 1) => Some(Choice::A),
            (false, 2) => Some(Choice::B),
            _ => None,
        },
        Value::Str(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return choice_from_value(&Value::Num(n), zero_based);
            }
            label_choice(s).or_else(|| textual_choice(s))
        }
        Value::Null | Value::Bool(_) | Value::Other => None,
    }
}

/// A short label: "A", "b", "Solution A", "Response B", "solution_a", "tie", "Equal", "both".
fn label_choice(label: &str) -> Option<Choice> {
    let cleaned: String = label
        .chars()
        .filter(|c| {
            !matches!(
                c,
                '*' | '"' | '\'' | '`' | '.' | '!' | '(' | ')' | '[' | ']'
            )
        })
        .collect::<String>()
        .to_lowercase()
        .replace(['_', '-'], " ");
    let mut word = cleaned.trim();
    for prefix in ["solution", "response", "candidate", "option", "answer"] {
        if let Some(rest) = word.strip_prefix(prefix) {
            word = rest.trim();
        }
    }
    match word {
        "a" | "1" => Some(Choice::A),
        "b" | "2" => Some(Choice::B),
        "tie" | "a tie" | "draw" | "equal" | "equally good" | "both" | "same" | "neither"
        | "none" | "a = b" | "a=b" => Some(Choice::Tie),
        _ => None,
    }
}

/// Verdicts written in prose. Explicit "verdict:"-style labels win; otherwise the last
/// recognised phrase ("Solution B is correct", "it's a tie", `**A**`) decides.
fn textual_choice(text: &str) -> Option<Choice> {
    // ASCII lowercasing keeps byte offsets valid in `text`.
    let lower = text.to_ascii_lowercase();
    let labelled = [
        "final verdict",
        "verdict",
        "winner",
        "better solution",
        "decision",
        "preferred solution",
        "the better one is",
    ];
    let mut best: Option<(usize, Choice)> = None;
    for key in labelled {
        for (at, _) in lower.match_indices(key) {
            let rest = &text[at + key.len()..];
            if let Some(choice) = label_after(rest) {
                if best.is_none_or(|(pos, _)| at >= pos) {
                    best = Some((at, choice));
                }
            }
        }
    }
    if let Some((_, choice)) = best {
        return Some(choice);
    }
    phrase_choice(&lower)
}

/// The label right after a "Verdict" keyword: skips `*`, `:`, `=`, quotes, "is", then reads
/// up to the end of the line or sentence.
fn label_after(rest: &str) -> Option<Choice> {
    let rest = rest.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '*' | ':' | '=' | '"' | '\'' | '`' | '-' | '#')
    });
    let rest = rest
        .strip_prefix("is ")
        .or_else(|| rest.strip_prefix("Is "))
        .unwrap_or(rest);
    let mut end = rest
        .find(['\n', ',', ';', '.', '}'])
        .unwrap_or(rest.len())
        .min(40);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    let head = &rest[..end];
    if let Some(choice) = label_choice(head) {
        return Some(choice);
    }
    // "Verdict: B — because…": the first word alone.
    let first = head.split_whitespace().next()?;
    label_choice(first)
}

/// Phrases anywhere in the (lowercased) text; the last one found decides.
fn phrase_choice(lower: &str) -> Option<Choice> {
    const POSITIVE: [&str; 12] = [
        " is better",
        " is correct",
        " is more correct",
        " is superior",
        " is stronger",
        " is preferable",
        " is the better",
        " is the correct",
        " is right",
        " wins",
        " should be preferred",
        " is more accurate",
    ];
    const TIE: [&str; 8] = [
        "it's a tie",
        "it is a tie",
        "a tie",
        "both are equally",
        "both solutions are correct",
        "both solutions are equally",
        "both are correct",
        "neither is better",
    ];
    let mut found: Vec<(usize, Choice)> = Vec::new();
    for (label, choice) in [
        ("solution a", Choice::A),
        ("solution b", Choice::B),
        ("response a", Choice::A),
        ("response b", Choice::B),
    ] {
        for phrase in POSITIVE {
            let needle = format!("{label}{phrase}");
            found.extend(lower.match_indices(&needle).map(|(at, _)| (at, choice)));
        }
        for prefix in ["prefer ", "choose ", "pick "] {
            let needle = format!("{prefix}{label}");
            found.extend(lower.match_indices(&needle).map(|(at, _)| (at, choice)));
        }
    }
    for phrase in TIE {
        found.extend(lower.match_indices(phrase).map(|(at, _)| (at, Choice::Tie)));
    }
    // `**A**`, `**Tie**`, `\boxed{B}`: a label set apart. `**Solution A**` is usually a
    // heading, so a label with its "solution" word counts only as the reply's last words.
    let end_of_text = lower
        .trim_end_matches(|c: char| c.is_whitespace() || c == '.')
        .len();
    for (open, close) in [("**", "**"), ("\\boxed{", "}")] {
        let mut from = 0;
        while let Some(at) = lower[from..].find(open).map(|i| i + from) {
            let inner_start = at + open.len();
            let Some(len) = lower[inner_start..].find(close) else {
                break;
            };
            let inner = &lower[inner_start..inner_start + len];
            let after = inner_start + len + close.len();
            let bare = inner.trim().len() <= 4 || label_choice(inner) == Some(Choice::Tie);
            let heading = lower[after..].trim_start().starts_with(':');
            if inner.len() <= 24 && !heading && (bare || after >= end_of_text) {
                if let Some(choice) = label_choice(inner) {
                    found.push((at, choice));
                }
            }
            from = after;
        }
    }
    found.into_iter().max_by_key(|(at, _)| *at).map(|(_, c)| c)
}

// ---------------------------------------------------------------------------------------------
// A forgiving reader for the JSON objects judges write

/// The values we care about; nested objects and arrays are skipped.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(i64),
    Bool(bool),
    Null,
    Other,
}

#[derive(Debug, Default)]
struct Object {
    pairs: Vec<(String, Value)>,
}

impl Object {
    /// The last value of `key` (case-insensitive; models repeat keys when they revise).
    fn get(&self, key: &str) -> Option<&Value> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    fn has_verdict(&self) -> bool {
        VERDICT_KEYS.iter().any(|k| self.get(k).is_some())
    }
}

/// The last object in `text` that has a verdict key. Objects that parse are skipped over as a
/// whole, so braces inside their strings are not tried again.
fn last_verdict_object(text: &str) -> Option<Object> {
    let bytes = text.as_bytes();
    let mut found = None;
    let mut at = 0;
    let mut tries = 0;
    while let Some(offset) = text[at..].find('{') {
        let start = at + offset;
        tries += 1;
        if tries > MAX_OBJECT_STARTS {
            break;
        }
        let mut reader = Reader { bytes, pos: start };
        let (object, complete) = reader.object();
        if object.has_verdict() {
            found = Some(object);
        }
        at = if complete { reader.pos } else { start + 1 };
        if at >= text.len() {
            break;
        }
    }
    found
}

/// A byte cursor over lenient JSON. Positions only ever stop on ASCII bytes, so slicing
/// between them is safe on UTF-8.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Reads `{ key: value, … }` from the `{` at `pos`. Returns the pairs read so far and
    /// whether the closing `}` was reached (a reply cut off mid-object keeps its early pairs).
    fn object(&mut self) -> (Object, bool) {
        let mut object = Object::default();
        self.pos += 1; // '{'
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return (object, true);
                }
                Some(b',') => {
                    self.pos += 1; // stray or trailing comma
                    continue;
                }
                None => return (object, false),
                _ => {}
            }
            let Some(key) = self.key() else {
                return (object, false);
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return (object, false);
            }
            self.pos += 1;
            self.skip_ws();
            let Some(value) = self.value() else {
                return (object, false);
            };
            object.pairs.push((key, value));
        }
    }

    fn key(&mut self) -> Option<String> {
        match self.peek()? {
            q @ (b'"' | b'\'') => self.string(q),
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    self.pos += 1;
                }
                std::str::from_utf8(&self.bytes[start..self.pos])
                    .ok()
                    .map(str::to_owned)
            }
            _ => None,
        }
    }

    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            q @ (b'"' | b'\'') => self.string(q).map(Value::Str),
            b'{' | b'[' => {
                self.skip_nested()?;
                Some(Value::Other)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+'))
                {
                    self.pos += 1;
                }
                let raw = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
                Some(raw.parse::<i64>().map_or(Value::Other, Value::Num))
            }
            _ => {
                // true / false / null / a bare word (`verdict: A`).
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.pos += 1;
                }
                let word = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
                match word {
                    "" => None,
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    other => Some(Value::Str(other.to_owned())),
                }
            }
        }
    }

    /// A string opened by `quote`. It ends at an unescaped `quote` followed by `,` `}` `]` `:`
    /// or the end, so apostrophes and unescaped quotes inside prose do not end it early.
    fn string(&mut self, quote: u8) -> Option<String> {
        self.pos += 1;
        let start = self.pos;
        let mut out: Vec<u8> = Vec::new();
        let mut i = start;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            if b == b'\\' {
                if let Some(&next) = self.bytes.get(i + 1) {
                    match next {
                        // `\text`, `\times`, `\neq`, `\right`: LaTeX written unescaped in a
                        // JSON string, not a tab, newline or return followed by a word.
                        b'n' | b't' | b'r' if latex_command_at(&self.bytes[i + 1..]) => {
                            out.extend_from_slice(&[b'\\', next])
                        }
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => {}
                        b'"' | b'\'' | b'\\' | b'/' => out.push(next),
                        // LaTeX inside JSON (`\frac`) is usually left unescaped: keep it.
                        _ => out.extend_from_slice(&[b'\\', next]),
                    }
                    i += 2;
                    continue;
                }
                out.push(b);
                i += 1;
                continue;
            }
            if b == quote && self.ends_string(i + 1) {
                self.pos = i + 1;
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            out.push(b);
            i += 1;
        }
        None
    }

    fn ends_string(&self, mut i: usize) -> bool {
        while self.bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        matches!(self.bytes.get(i), None | Some(b',' | b'}' | b']' | b':'))
    }

    /// Skips a nested `{…}` or `[…]` without recursion (depth is just a counter).
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        let mut in_string: Option<u8> = None;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if let Some(q) = in_string {
                if b == b'\\' {
                    self.pos += 1;
                } else if b == q {
                    in_string = None;
                }
                continue;
            }
            match b {
                b'"' => in_string = Some(b),
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------

/// The last `max` characters of `text` (a slice, no marker).
fn tail_str(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let start = text
        .char_indices()
        .nth(count - max)
        .map_or(text.len(), |(i, _)| i);
    &text[start..]
}

/// LaTeX commands whose names begin like the JSON escapes `\n`, `\t` and `\r`.
const LATEX_COMMANDS_LIKE_ESCAPES: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "textsf",
    "texttt",
    "textup",
    "times",
    "theta",
    "tau",
    "tan",
    "tanh",
    "to",
    "top",
    "triangle",
    "tfrac",
    "tilde",
    "therefore",
    "tbinom",
    "nu",
    "ne",
    "neq",
    "not",
    "notin",
    "nabla",
    "neg",
    "nleq",
    "ngeq",
    "nmid",
    "newline",
    "right",
    "rightarrow",
    "rho",
    "rangle",
    "rfloor",
    "rceil",
    "rbrace",
    "rvert",
    "rVert",
    "rm",
    "root",
];

/// Whether `bytes` (what follows a backslash) starts with one of
/// [`LATEX_COMMANDS_LIKE_ESCAPES`] as a whole word.
fn latex_command_at(bytes: &[u8]) -> bool {
    let name_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    std::str::from_utf8(&bytes[..name_len])
        .is_ok_and(|name| LATEX_COMMANDS_LIKE_ESCAPES.contains(&name))
}

/// An explanation cut to [`EXPLANATION_CHARS`], whitespace collapsed (it goes on one line).
fn shorten(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXPLANATION_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(EXPLANATION_CHARS).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_skipped_and_late_keys_still_read() {
        let v = parse_verdict(r#"{"scores": {"a": [1, {"x": 2}]}, "verdict": "B"}"#);
        assert_eq!(v.choice, Some(Choice::B));
    }

    #[test]
    fn a_cut_off_object_keeps_the_pairs_before_the_cut() {
        let v = parse_verdict(r#"{"verdict": "A", "explanation": "Solution A checks every ca"#);
        assert_eq!(v.choice, Some(Choice::A));
    }

    // Issue 27: "3 \text{ and } 2" in a judge's JSON reached the page as "3𝑒𝑥𝑡𝑎𝑛𝑑2": the
    // `\t` of `\text` was read as a tab.
    #[test]
    fn latex_in_a_json_explanation_keeps_its_backslashes() {
        let v = parse_verdict(
            r#"{"verdict": "A", "explanation": "A gets $3 \text{ and } 2$, $2 \times 3 \neq 5$, $\right)$.\nThen\tdone"}"#,
        );
        assert_eq!(v.choice, Some(Choice::A));
        assert_eq!(
            v.explanation,
            r"A gets $3 \text{ and } 2$, $2 \times 3 \neq 5$, $\right)$. Then done"
        );
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let text = format!("{{\"x\": {}", "[".repeat(100_000));
        assert_eq!(parse_verdict(&text).choice, None);
    }
}
