//! LaTeX to MathML with KaTeX (katex-rs), for exports that must open anywhere without network
//! or fonts: browsers render MathML natively. Malformed LaTeX never fails an export: it is
//! shown as its source, marked, with KaTeX's message as a tooltip.

use super::escape_html;

/// Renders one formula. `display` is a centered block (`$$…$$`, `\[…\]`).
pub fn render_math(tex: &str, display: bool) -> String {
    let opts = katex::Opts::builder()
        .display_mode(display)
        .output_type(katex::OutputType::Mathml)
        .throw_on_error(true)
        // Model output is untrusted: no \href, \includegraphics, \htmlClass.
        .trust(false)
        .build()
        .expect("static KaTeX options are valid");
    match katex::render_with_opts(tex, &opts) {
        Ok(mathml) => mathml,
        Err(error) => {
            let delimiter = if display { "$$" } else { "$" };
            format!(
                "<code class=\"math-error\" title=\"{}\">{delimiter}{}{delimiter}</code>",
                escape_html(&error.to_string()),
                escape_html(tex)
            )
        }
    }
}

/// Rewrites `\(…\)` and `\[…\]` (what most models write) into `$…$` and `$$…$$` (what the
/// Markdown parser's math extension reads), outside code blocks and code spans.
pub fn normalize_math_delimiters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let fence = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f));
        match (in_fence, fence) {
            (None, Some(f)) => {
                in_fence = Some(f);
                out.push_str(line);
                continue;
            }
            (Some(open), Some(f)) if open == f => {
                in_fence = None;
                out.push_str(line);
                continue;
            }
            (Some(_), _) => {
                out.push_str(line);
                continue;
            }
            (None, None) => {}
        }
        rewrite_line(line, &mut out);
    }
    out
}

fn rewrite_line(line: &str, out: &mut String) {
    let mut in_code_span = false;
    let mut chars = line.chars().peekable();
    let mut backslashes = 0usize;
    while let Some(c) = chars.next() {
        if c == '`' {
            in_code_span = !in_code_span;
        }
        // `\\[2pt]` is a LaTeX line break, not a delimiter: only an unescaped backslash opens.
        if c == '\\' && !in_code_span && backslashes.is_multiple_of(2) {
            let replacement = match chars.peek() {
                Some('(') | Some(')') => Some("$"),
                Some('[') | Some(']') => Some("$$"),
                _ => None,
            };
            if let Some(replacement) = replacement {
                chars.next();
                out.push_str(replacement);
                backslashes = 0;
                continue;
            }
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_delimiters_become_dollars_outside_code() {
        assert_eq!(
            normalize_math_delimiters("So \\(x=2\\) and \\[\\boxed{4}\\]"),
            "So $x=2$ and $$\\boxed{4}$$"
        );
        assert_eq!(
            normalize_math_delimiters("a \\\\[2pt] b `\\(code\\)`"),
            "a \\\\[2pt] b `\\(code\\)`"
        );
        assert_eq!(
            normalize_math_delimiters("```\n\\(x\\)\n```\n\\(y\\)"),
            "```\n\\(x\\)\n```\n$y$"
        );
    }

    #[test]
    fn formulas_render_to_mathml_and_errors_keep_the_source() {
        let ok = render_math("\\frac{1}{2}", false);
        assert!(ok.contains("<math") && ok.contains("<mfrac>"), "{ok}");
        let display = render_math("\\boxed{42}", true);
        assert!(display.contains("display=\"block\""), "{display}");
        let bad = render_math("\\frac{1}{", false);
        assert!(bad.starts_with("<code class=\"math-error\""), "{bad}");
        assert!(bad.contains("\\frac{1}{"), "{bad}");
        let script = render_math("\\href{javascript:alert(1)}{x}", false);
        assert!(!script.contains("href=\"javascript"), "{script}");
    }
}
