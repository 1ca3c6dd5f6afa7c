//! Text-level cleanup of one final answer: removes what never changes its meaning (math
//! delimiters, spacing commands, `\left`/`\right`, units in `\text{}`, degree signs, thousands
//! separators, a trailing period) so that later stages see plain LaTeX math. Runs in linear
//! time on any input and never panics.

/// Commands whose braced argument is plain text or a font change: `\text{cm}` is a unit,
/// `\text{Evelyn}` an answer, `\textbf{(C)}` a choice.
const TEXT_COMMANDS: &[&str] = &[
    "\\text",
    "\\textbf",
    "\\textit",
    "\\textrm",
    "\\textnormal",
    "\\mathrm",
    "\\mathbf",
    "\\mathit",
    "\\mathsf",
    "\\mathtt",
    "\\mbox",
    "\\hbox",
    "\\emph",
    "\\operatorname",
    "\\textsf",
    "\\texttt",
];

/// Pieces of LaTeX that never change the value, dropped in this order: these, then
/// [`DEGREE_MARKS`], then [`DROPPED_LAST`] (order matters: longer first).
const DROPPED_FIRST: &[&str] = &[
    "\\displaystyle",
    "\\textstyle",
    "\\scriptstyle",
    "\\qquad",
    "\\quad",
    "\\left.",
    "\\right.",
];

/// Degree signs: dropped here (the MATH convention writes `145` for `145^\circ`), and read
/// as radians by `degrees` against an answer with π.
pub(crate) const DEGREE_MARKS: &[&str] = &[
    "^{\\circ}",
    "^\\circ",
    "{}^\\circ",
    "\\circ",
    "\\degree",
    "°",
];

const DROPPED_LAST: &[&str] = &["~", "\\$", "$"];

/// Cleans one answer (see the module doc). The result may still be any text.
pub fn clean(answer: &str) -> String {
    let mut s = answer.trim().to_owned();
    s = unwrap_box(&s);
    s = replace_unicode(&s);
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\cfrac", "\\frac"),
        ("\\lbrace", "\\{"),
        ("\\rbrace", "\\}"),
        ("\\lvert", "|"),
        ("\\rvert", "|"),
        ("\\vert", "|"),
        ("\\le ", "\\leq "),
        ("\\ge ", "\\geq "),
        ("{,}", ","),
        ("\\%", "%"),
    ] {
        s = s.replace(from, to);
    }
    for piece in DROPPED_FIRST.iter().chain(DEGREE_MARKS).chain(DROPPED_LAST) {
        s = s.replace(piece, " ");
    }
    s = drop_left_right(&s);
    s = text_groups(&s);
    s = squeeze_spaces(&s);
    s = strip_trailing_punctuation(&s);
    s = strip_plain_units(&s);
    s = strip_thousands(&s);
    s
}

/// `\boxed{X}` / `\fbox{X}` around the whole answer becomes `X`.
fn unwrap_box(s: &str) -> String {
    for head in ["\\boxed", "\\fbox"] {
        if let Some(rest) = s.strip_prefix(head) {
            let rest = rest.trim_start();
            if let Some(inner) = rest.strip_prefix('{') {
                if let Some(end) = matching_brace(inner) {
                    if inner[end + 1..].trim().is_empty() {
                        return inner[..end].trim().to_owned();
                    }
                }
            } else if !rest.is_empty() {
                return rest.to_owned(); // `\boxed 5`
            }
        }
    }
    s.to_owned()
}

/// Byte index of the `}` closing a group whose `{` was just before `s`.
pub fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn replace_unicode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '−' | '–' => out.push('-'),
            '×' => out.push_str("\\times "),
            '·' | '⋅' => out.push_str("\\cdot "),
            'π' => out.push_str("\\pi "),
            '√' => out.push_str("\\sqrt "),
            '∞' => out.push_str("\\infty "),
            '\u{a0}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Removes `\left` and `\right` (not `\leftarrow`, `\rightarrow`...) and the spacing
/// commands `\!`, `\,`, `\;`, `\:`, `\ ` (scanning, so that a row break `\\` followed by
/// a space or comma is left alone).
fn drop_left_right(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let word = tail[1..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(tail.len(), |n| n + 1);
        let name = &tail[..word];
        if name == "\\left" || name == "\\right" {
            out.push(' ');
        } else {
            out.push_str(name);
        }
        rest = &tail[word.max(1)..];
        if word == 1 {
            // A backslash followed by a symbol: a spacing command goes, others stay whole.
            if let Some(c) = rest.chars().next() {
                if matches!(c, '!' | ',' | ';' | ':') || c.is_whitespace() {
                    out.pop();
                    out.push(' ');
                } else {
                    out.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Handles `\text{...}`-like groups: units next to a number are dropped, `or`/`and` become a
/// list comma, anything else keeps its content (`\text{Evelyn}` -> `Evelyn`).
fn text_groups(s: &str) -> String {
    let has_math_outside = |start: usize, end: usize| {
        s[..start]
            .chars()
            .chain(s[end..].chars())
            .any(|c| c.is_ascii_digit())
    };
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let Some(cmd) = TEXT_COMMANDS
            .iter()
            .filter(|c| s[i..].starts_with(*c))
            .max_by_key(|c| c.len())
        else {
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        let after = &s[i + cmd.len()..];
        let trimmed = after.trim_start();
        // `\textbf` must not be read as `\text` + `bf`.
        if after.starts_with(|c: char| c.is_ascii_alphabetic()) || !trimmed.starts_with('{') {
            out.push_str(cmd);
            i += cmd.len();
            continue;
        }
        let open = i + cmd.len() + (after.len() - trimmed.len()) + 1;
        let (content, end) = match matching_brace(&s[open..]) {
            Some(e) => (&s[open..open + e], open + e + 1),
            None => (&s[open..], s.len()),
        };
        let words = content.trim();
        let is_words = !words.is_empty()
            && words
                .chars()
                .all(|c| c.is_alphabetic() || c == ' ' || c == '.');
        let lower = words.to_lowercase();
        if lower == "or" || lower == "and" {
            out.push(',');
            i = end;
        } else if is_words && words.chars().count() > 1 && has_math_outside(i, end) {
            // A unit: drop it with a following square/cube (`\text{ m}^2`).
            out.push(' ');
            let rest = &s[end..];
            let skip = ["^2", "^3", "^{2}", "^{3}"]
                .iter()
                .find(|p| rest.starts_with(*p))
                .map_or(0, |p| p.len());
            i = end + skip;
        } else {
            out.push(' ');
            out.push_str(content);
            out.push(' ');
            i = end;
        }
    }
    out
}

/// Removes whitespace except between two letters (`\cot x`, `Evelyn Smith`).
fn squeeze_spaces(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let before = out.chars().last();
            let after = chars.get(j).copied();
            if let (Some(b), Some(a)) = (before, after) {
                if b.is_alphabetic() && a.is_alphabetic() {
                    out.push(' ');
                }
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn strip_trailing_punctuation(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let next = t
            .strip_suffix('.')
            .or_else(|| t.strip_suffix("\\\\"))
            .or_else(|| t.strip_suffix(';'))
            .unwrap_or(t)
            .trim_end();
        if next.len() == t.len() {
            return t.to_owned();
        }
        t = next;
    }
}

/// `18 dollars` / `5 cm` -> the number, only when the rest is a plain number.
fn strip_plain_units(s: &str) -> String {
    let Some(pos) = s.find(|c: char| c.is_alphabetic()) else {
        return s.to_owned();
    };
    let (head, tail) = s.split_at(pos);
    let plain_number = head.chars().any(|c| c.is_ascii_digit())
        && head
            .chars()
            .all(|c| c.is_ascii_digit() || ".,+-/ ".contains(c));
    let unit_words =
        tail.chars().count() > 1 && tail.chars().all(|c| c.is_alphabetic() || c == ' ');
    if plain_number && unit_words {
        head.trim().to_owned()
    } else {
        s.to_owned()
    }
}

/// `1,000` or `-12,345.5` (the whole answer, groups of exactly three) -> no commas, so that a
/// list like `3,5,7` is left alone.
fn strip_thousands(s: &str) -> String {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let int = body.split_once('.').map_or(body, |(i, _)| i);
    let frac_ok = body
        .split_once('.')
        .is_none_or(|(_, f)| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3);
    if grouped && frac_ok {
        s.replace(',', "")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn noise_is_removed() {
        assert_eq!(clean(r"$1{,}000$"), "1000");
        assert_eq!(clean(r"10,\!080"), "10080");
        assert_eq!(clean(r"1\,000"), "1000");
        assert_eq!(clean(r"3, 5, 7"), "3,5,7");
        assert_eq!(clean(r"5\text{ cm}"), "5");
        assert_eq!(clean(r"\$18"), "18");
        assert_eq!(clean("18 dollars."), "18");
        assert_eq!(clean(r"\frac{270}7\text{ degrees}"), r"\frac{270}7");
        assert_eq!(clean(r"145^\circ"), "145");
        assert_eq!(clean(r"\text{Evelyn}"), "Evelyn");
        assert_eq!(clean(r"\textbf{(113) }"), "(113)");
        assert_eq!(
            clean(r"\left( 3, \frac{\pi}{2} \right)"),
            r"(3,\frac{\pi}{2})"
        );
        assert_eq!(clean(r"\boxed{\dfrac12}"), r"\frac12");
        assert_eq!(clean(r"\cot x"), r"\cot x");
        assert_eq!(clean(r"\text{unbalanced"), "unbalanced");
    }
}
