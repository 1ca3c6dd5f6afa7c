//! Finding a solution's final answer: `\boxed{...}` (last one wins), `<answer>...</answer>`,
//! else the last number in the text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    Boxed,
    AnswerTag,
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
    last_number(solution).map(|text| ExtractedAnswer {
        text,
        source: AnswerSource::LastNumber,
    })
}

/// Content of the last `\boxed{...}` (or `\fbox{...}`), with nested braces balanced.
fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed{", "\\fbox{"]
        .iter()
        .filter_map(|m| text.rfind(m).map(|i| i + m.len()))
        .max()?;
    let mut depth = 1;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i].trim().to_owned());
                }
            }
            _ => {}
        }
    }
    None // unbalanced: an unfinished solution
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
            answer("the total is -1,250.5."),
            Some(("-1250.5".into(), AnswerSource::LastNumber))
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
