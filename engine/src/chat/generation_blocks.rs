//! `{% generation %}…{% endgeneration %}`: Hugging Face's marker for the tokens an assistant
//! wrote (`apply_chat_template(return_assistant_tokens_mask=True)` trains on them). It is a
//! `transformers` Jinja extension, not Jinja, so minijinja rejects it; for rendering it means
//! nothing but "output the body". K2 Horizon's served template uses it.
//!
//! Each marker is rewritten into an equivalent no-op block (`{% if true %}` / `{% endif %}`)
//! with the same whitespace control, so the text around it renders exactly as under
//! `transformers`: a block tag is what `trim_blocks` / `lstrip_blocks` and `{%-`/`-%}` act on,
//! and deleting the marker instead would leave the newline that followed it.

use crate::error::{EngineError, Result};

/// One marker found in the source: its byte range and its kind.
struct Marker {
    start: usize,
    end: usize,
    opens: bool,
    /// `-` or `+` right after `{%`, and right before `%}`.
    left: &'static str,
    right: &'static str,
}

/// The source with every generation marker replaced by a no-op block of the same shape, or a
/// clear error when the markers are unbalanced.
pub(super) fn strip_generation_blocks(source: &str) -> Result<String> {
    let markers = find_markers(source);
    if markers.is_empty() {
        return Ok(source.to_owned());
    }
    let mut depth = 0usize;
    for marker in &markers {
        if marker.opens {
            depth += 1;
        } else if depth == 0 {
            return Err(unbalanced(
                source,
                marker,
                "has no `{% generation %}` before it",
            ));
        } else {
            depth -= 1;
        }
    }
    if depth > 0 {
        let last_open = markers.iter().rev().find(|m| m.opens);
        if let Some(marker) = last_open {
            return Err(unbalanced(
                source,
                marker,
                "is never closed by `{% endgeneration %}`",
            ));
        }
    }

    let mut out = String::with_capacity(source.len());
    let mut copied = 0;
    for marker in &markers {
        out.push_str(&source[copied..marker.start]);
        let body = if marker.opens { "if true" } else { "endif" };
        out.push_str(&format!("{{%{} {body} {}%}}", marker.left, marker.right));
        copied = marker.end;
    }
    out.push_str(&source[copied..]);
    Ok(out)
}

fn unbalanced(source: &str, marker: &Marker, problem: &str) -> EngineError {
    let line = source[..marker.start].matches('\n').count() + 1;
    EngineError::ChatTemplate(format!(
        "the template's `{}` on line {line} {problem}",
        &source[marker.start..marker.end]
    ))
}

/// Every `{%[-+]? (end)?generation [-+]?%}` tag, in order; comments (`{# … #}`) and raw
/// blocks (`{% raw %}…{% endraw %}`) are text, not tags, and are skipped.
fn find_markers(source: &str) -> Vec<Marker> {
    let mut markers = Vec::new();
    let mut from = 0;
    while let Some(offset) = source[from..].find(['{']) {
        let start = from + offset;
        let rest = &source[start..];
        from = start + 1;
        if rest.starts_with("{#") {
            from = skip_past(source, start, "#}");
        } else if rest.starts_with("{%") {
            if is_tag(rest, "raw") {
                from = skip_past(source, start, "endraw");
            } else if let Some(marker) = parse_marker(source, start) {
                from = marker.end;
                markers.push(marker);
            }
        }
    }
    markers
}

/// The position after the first `end` from `start` on (the end of the source if none).
fn skip_past(source: &str, start: usize, end: &str) -> usize {
    source[start..]
        .find(end)
        .map_or(source.len(), |at| start + at + end.len())
}

/// Whether `tag` (starting with `{%`) is the statement `name`.
fn is_tag(tag: &str, name: &str) -> bool {
    let mut rest = &tag[2..];
    whitespace_control(&mut rest);
    rest.trim_start().strip_prefix(name).is_some_and(|after| {
        after.starts_with(|c: char| c.is_whitespace() || c == '-' || c == '+' || c == '%')
    })
}

fn parse_marker(source: &str, start: usize) -> Option<Marker> {
    let mut rest = &source[start + 2..];
    let left = whitespace_control(&mut rest);
    rest = rest.trim_start();
    let (opens, after_word) = if let Some(r) = rest.strip_prefix("endgeneration") {
        (false, r)
    } else {
        (true, rest.strip_prefix("generation")?)
    };
    // `generation_x` or `generations` is another word.
    if after_word.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let mut rest = after_word.trim_start();
    let right = whitespace_control(&mut rest);
    let rest = rest.strip_prefix("%}")?;
    Some(Marker {
        start,
        end: source.len() - rest.len(),
        opens,
        left,
        right,
    })
}

/// Takes a leading `-` or `+` off `rest`.
fn whitespace_control(rest: &mut &str) -> &'static str {
    for sign in ["-", "+"] {
        if let Some(r) = rest.strip_prefix(sign) {
            *rest = r;
            return sign;
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_no_op_blocks_with_their_whitespace_control() {
        assert_eq!(
            strip_generation_blocks("a{% generation %}b{%- endgeneration -%}c").unwrap(),
            "a{% if true %}b{%- endif -%}c"
        );
        assert_eq!(
            strip_generation_blocks("{%-generation+%}x{%+endgeneration%}").unwrap(),
            "{%- if true +%}x{%+ endif %}"
        );
    }

    #[test]
    fn other_tags_and_templates_without_markers_are_untouched() {
        let source = "{% if generation %}{{ generations }}{% set generation_x = 1 %}{% endif %}";
        assert_eq!(strip_generation_blocks(source).unwrap(), source);
    }

    #[test]
    fn markers_in_comments_and_raw_blocks_are_text() {
        let source = "{# uses {% generation %} #}{% raw %}{% endgeneration %}{% endraw %}{% generation %}x{% endgeneration %}";
        assert_eq!(
            strip_generation_blocks(source).unwrap(),
            "{# uses {% generation %} #}{% raw %}{% endgeneration %}{% endraw %}{% if true %}x{% endif %}"
        );
    }

    #[test]
    fn unbalanced_markers_are_reported_with_their_line() {
        let unclosed = strip_generation_blocks("a\n{% generation %}b").unwrap_err();
        assert!(
            unclosed
                .to_string()
                .contains("`{% generation %}` on line 2 is never closed"),
            "{unclosed}"
        );
        let stray = strip_generation_blocks("{%- endgeneration %}").unwrap_err();
        assert!(
            stray.to_string().contains("has no `{% generation %}`"),
            "{stray}"
        );
    }
}
