//! Finding a solution's final answer, most explicit marker first: `\boxed{...}` (last one
//! wins; also `\fbox{}` and brace-less `\boxed 5`), `<answer>...</answer>`, GSM8K's `#### N`,
//! "the (final) answer is X", else the last number in the text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    Boxed,
    AnswerTag,
    /// GSM8K style `#### 42`.
    Hashes,
    /// "The answer is 42." / "Final answer: 42".
    AnswerIs,
    LastNumber,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedAnswer {
    pub text: String,
    pub source: AnswerSource,
}

pub fn extract_answer(solution: &str) -> Option<ExtractedAnswer> {
    if let Some(text) = last_boxed(solution) {
        return Some(ExtractedAnswer {
            text,
            source: AnswerSource::Boxed,
        });
    }
    if let Some(text) = last_answer_tag(solution) {
        return Some(ExtractedAnswer {
            text,
            source: AnswerSource::AnswerTag,
        });
    }
    if let Some(text) = after_hashes(solution) {
        return Some(ExtractedAnswer {
            text,
            source: AnswerSource::Hashes,
        });
    }
    if let Some(text) = answer_is(solution) {
        return Some(ExtractedAnswer {
            text,
            source: AnswerSource::AnswerIs,
        });
    }
    last_number(solution).map(|text| ExtractedAnswer {
        text,
        source: AnswerSource::LastNumber,
    })
}

/// Content of the last `\boxed{...}` (or `\fbox{...}`), with nested braces balanced;
/// `\boxed 5` (a single token, as TeX allows) counts too.
fn last_boxed(text: &str) -> Option<String> {
    let (at, head) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|m| text.rfind(m).map(|i| (i, *m)))
        .max()?;
    let rest = &text[at + head.len()..];
    let trimmed = rest.trim_start();
    if let Some(inner) = trimmed.strip_prefix('{') {
        let end = super::normalize::matching_brace(inner)?; // unbalanced: an unfinished solution
        return Some(inner[..end].trim().to_owned());
    }
    if trimmed.len() == rest.len() {
        return None; // `\boxedfoo` is another command
    }
    let token: String = trimmed
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '$' | '}' | ')' | ']'))
        .collect();
    let token = token.trim_end_matches(['.', ',']).to_owned();
    (!token.is_empty()).then_some(token)
}

/// GSM8K's `#### 42`: the rest of the line after the last `####`.
fn after_hashes(text: &str) -> Option<String> {
    let at = text.rfind("####")? + 4;
    let line = text[at..].lines().next()?.trim();
    let line = line.trim_end_matches('.').trim();
    (!line.is_empty())
        .then(|| line.replace(',', "").trim_start_matches('$').to_owned())
        .filter(|s| !s.is_empty())
}

/// "The answer is X." / "Final answer: X": X up to the end of its sentence or line.
fn answer_is(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let (at, marker) = [
        "the answer is",
        "final answer is",
        "final answer:",
        "answer:",
    ]
    .iter()
    .filter_map(|m| lower.rfind(m).map(|i| (i, *m)))
    .max_by_key(|(i, m)| (*i + m.len(), m.len()))?;
    let rest = text.get(at + marker.len()..)?;
    let line = rest.lines().find(|l| !l.trim().is_empty())?.trim();
    // A sentence ends at ". " (not at a decimal point).
    let end = line.find(". ").unwrap_or(line.len());
    let answer = line[..end]
        .trim()
        .trim_end_matches('.')
        .trim_matches(|c| c == '$' || c == '*' || c == ':')
        .trim();
    (!answer.is_empty() && answer.chars().count() <= 200).then(|| answer.to_owned())
}

fn last_answer_tag(text: &str) -> Option<String> {
    let open = text.rfind("<answer>")? + "<answer>".len();
    let close = text[open..].find("</answer>")? + open;
    let inner = text[open..close].trim();
    (!inner.is_empty()).then(|| last_boxed(inner).unwrap_or_else(|| inner.to_owned()))
}

/// The last number: optional sign, digits with optional thousands separators and decimals.
fn last_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    while end > 0 {
        if bytes[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0
                && (bytes[start - 1].is_ascii_digit()
                    || ((bytes[start - 1] == b',' || bytes[start - 1] == b'.')
                        && start >= 2
                        && bytes[start - 2].is_ascii_digit()))
            {
                start -= 1;
            }
            // Digits glued to a word (`sepehr2010`, `H2O`) are a name, not a number.
            if start > 0 && bytes[start - 1].is_ascii_alphabetic() {
                end = start;
                continue;
            }
            if start > 0 && bytes[start - 1] == b'-' {
                start -= 1;
            }
            return Some(text[start..end].replace(',', ""));
        }
        end -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(s: &str) -> Option<(String, AnswerSource)> {
        extract_answer(s).map(|a| (a.text, a.source))
    }

    #[test]
    fn the_last_boxed_answer_wins_and_nested_braces_balance() {
        assert_eq!(
            answer(r"first \boxed{1} then \boxed{\frac{1}{2}} done"),
            Some((r"\frac{1}{2}".into(), AnswerSource::Boxed))
        );
    }

    #[test]
    fn answer_tags_are_used_without_a_box() {
        assert_eq!(
            answer("<think>x=3</think><answer> 42 </answer>"),
            Some(("42".into(), AnswerSource::AnswerTag))
        );
    }

    #[test]
    fn the_last_number_is_the_fallback_with_separators_removed() {
        assert_eq!(
            answer("she earns $1,250.50 in total, not 3"),
            Some(("3".into(), AnswerSource::LastNumber))
        );
        assert_eq!(
            answer("so 180 + 24 = 204. -sepehr2010"),
            Some(("204".into(), AnswerSource::LastNumber))
        );
        assert_eq!(
            answer("the total is -1,250.5."),
            Some(("-1250.5".into(), AnswerSource::LastNumber))
        );
    }

    #[test]
    fn other_markers_are_found() {
        assert_eq!(
            answer(r"so \boxed 5."),
            Some(("5".into(), AnswerSource::Boxed))
        );
        assert_eq!(
            answer("48/2 = 24\n#### 1,024"),
            Some(("1024".into(), AnswerSource::Hashes))
        );
        assert_eq!(
            answer("So the answer is $\\frac{3}{4}$. Done, 7"),
            Some((r"\frac{3}{4}".into(), AnswerSource::AnswerIs))
        );
        assert_eq!(
            answer("Final Answer: 2.5"),
            Some(("2.5".into(), AnswerSource::AnswerIs))
        );
    }

    #[test]
    fn an_unfinished_box_falls_back_and_no_number_gives_none() {
        assert_eq!(
            answer(r"so 7 \boxed{\frac{1"),
            Some(("1".into(), AnswerSource::LastNumber))
        );
        assert_eq!(answer("no idea"), None);
    }
}
