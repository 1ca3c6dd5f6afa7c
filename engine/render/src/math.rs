//! LaTeX to MathML with KaTeX (katex-rs), for exports that must open anywhere without network
//! or fonts: browsers render MathML natively. Malformed LaTeX never fails an export: it is
//! shown as its source, marked, with KaTeX's message as a tooltip.

use crate::escape_html;

/// Renders one formula. `display` is a centered block (`$$…$$`, `\[…\]`).
pub fn render_math(tex: &str, display: bool) -> String {
    match katex_mathml(tex, display) {
        Ok(mathml) => mathml,
        Err(message) => {
            let delimiter = if display { "$$" } else { "$" };
            format!(
                "<code class=\"math-error\" title=\"{}\">{delimiter}{}{delimiter}</code>",
                escape_html(&message),
                escape_html(tex)
            )
        }
    }
}

/// KaTeX in an embedded JavaScript engine (katex-rs).
#[cfg(not(target_arch = "wasm32"))]
fn katex_mathml(tex: &str, display: bool) -> Result<String, String> {
    let opts = katex::Opts::builder()
        .display_mode(display)
        .output_type(katex::OutputType::Mathml)
        .throw_on_error(true)
        // Model output is untrusted: no \href, \includegraphics, \htmlClass.
        .trust(false)
        .build()
        .expect("static KaTeX options are valid");
    katex::render_with_opts(tex, &opts).map_err(|e| e.to_string())
}

/// KaTeX in the page: the UI loads `katex.min.js` with a script tag (the same KaTeX that
/// katex-rs embeds), so the page's Content-Security-Policy can forbid `eval`.
#[cfg(target_arch = "wasm32")]
fn katex_mathml(tex: &str, display: bool) -> Result<String, String> {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = katex, js_name = renderToString, catch)]
        fn render_to_string(tex: &str, options: &JsValue) -> Result<String, JsValue>;
    }
    let options = js_sys::Object::new();
    let set = |key: &str, value: JsValue| {
        let _ = js_sys::Reflect::set(&options, &key.into(), &value);
    };
    set("displayMode", display.into());
    set("output", "mathml".into());
    set("throwOnError", true.into());
    set("trust", false.into());
    render_to_string(tex, &options).map_err(|e| {
        js_sys::Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "KaTeX is not loaded".into())
    })
}

/// Rewrites `\(…\)` and `\[…\]` (what most models write) into `$…$` and `$$…$$` (what the
/// Markdown parser's math extension reads), outside code blocks and code spans.
pub fn normalize_math_delimiters(text: &str) -> String {
    let text = wrap_bare_environments(text);
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

/// Math environments models often write with no delimiters around them.
const MATH_ENVIRONMENTS: &[&str] = &[
    "align",
    "align*",
    "aligned",
    "equation",
    "equation*",
    "gather",
    "gather*",
    "cases",
    "matrix",
    "pmatrix",
    "bmatrix",
    "vmatrix",
    "Vmatrix",
    "array",
];

/// `\begin{align}…\end{align}` (and the other math environments) standing in plain text
/// becomes display math, `$$…$$`; environments already inside `$$`/`\[` are left alone.
fn wrap_bare_environments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("\\begin{") {
        let (before, from_begin) = rest.split_at(start);
        out.push_str(before);
        let name_end = from_begin[7..].find('}').map(|i| i + 7);
        let Some(name_end) = name_end else {
            out.push_str(from_begin);
            return out;
        };
        let name = &from_begin[7..name_end];
        let end_tag = format!("\\end{{{name}}}");
        let inside_math = {
            let head = out.trim_end();
            head.ends_with('$') || inside_open_math(&out)
        };
        match from_begin.find(&end_tag) {
            Some(end) if MATH_ENVIRONMENTS.contains(&name) && !inside_math => {
                let block_end = end + end_tag.len();
                out.push_str("$$");
                out.push_str(&from_begin[..block_end]);
                out.push_str("$$");
                rest = &from_begin[block_end..];
            }
            _ => {
                out.push_str(&from_begin[..name_end + 1]);
                rest = &from_begin[name_end + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `before` ends inside math: a `\[` or `\(` not yet closed, or an odd number of `$$`
/// (an environment there is part of the formula, as in `\[ |x| = \begin{cases}…` or
/// `\(\begin{pmatrix}…`).
fn inside_open_math(before: &str) -> bool {
    before.matches("\\[").count() > before.matches("\\]").count()
        || before.matches("\\(").count() > before.matches("\\)").count()
        || before.matches("$$").count() % 2 == 1
}

/// `$ \frac{1}{2} $`: models often pad inline math with spaces, which Markdown's math rule
/// (made so that "$5 and $10" stays money) does not read as math. A padded pair whose content
/// holds a LaTeX command is tightened to `$\frac{1}{2}$`; money has no backslashes.
fn tighten_padded_math(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains("$ ") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find("$ ") {
        let after = &rest[open + 2..];
        let close = after.find(" $").filter(|&c| {
            let inner = &after[..c];
            inner.contains('\\') && !inner.contains('$') && !inner.trim().is_empty()
        });
        let doubled = open > 0 && rest.as_bytes()[open - 1] == b'$';
        match close {
            Some(c) if !doubled => {
                out.push_str(&rest[..open]);
                out.push('$');
                out.push_str(after[..c].trim());
                out.push('$');
                rest = &after[c + 2..];
            }
            _ => {
                out.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn rewrite_line(line: &str, out: &mut String) {
    let line = tighten_padded_math(line);
    let line = line.as_ref();
    let mut in_code_span = false;
    let mut chars = line.chars().peekable();
    let mut backslashes = 0usize;
    while let Some(c) = chars.next() {
        if c == '`' {
            in_code_span = !in_code_span;
        }
        // `\\[2pt]` is a LaTeX line break, not a delimiter: only an unescaped backslash opens.
        if c == '\\' && !in_code_span && backslashes.is_multiple_of(2) {
            match chars.peek() {
                // `\( n \)`: the padding goes, or Markdown would not read `$ n $` as math.
                Some('(') => {
                    chars.next();
                    out.push('$');
                    while chars.next_if_eq(&' ').is_some() {}
                    backslashes = 0;
                    continue;
                }
                Some(')') => {
                    chars.next();
                    let kept = out.trim_end_matches(' ').len();
                    out.truncate(kept);
                    out.push('$');
                    backslashes = 0;
                    continue;
                }
                Some('[') | Some(']') => {
                    chars.next();
                    out.push_str("$$");
                    backslashes = 0;
                    continue;
                }
                _ => {}
            }
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the 1.5B model's real answers (tests/browser/fixtures/golden).
    #[test]
    fn padded_parentheses_are_math_and_environments_inside_brackets_stay_inside() {
        assert_eq!(
            normalize_math_delimiters("the first \\( n \\) odd numbers is \\(  n^2 \\)."),
            "the first $n$ odd numbers is $n^2$."
        );
        let cases = "\\[\n|x| = \n\\begin{cases} \nx & \\text{if } x \\geq 0 \\\\\n-x & \\text{if } x < 0 \n\\end{cases}\n\\]\n";
        let normalized = normalize_math_delimiters(cases);
        assert_eq!(normalized.matches("$$").count(), 2, "{normalized}");
        let html = crate::markdown_to_html(cases);
        assert_eq!(html.matches("<math").count(), 1, "{html}");
        assert!(html.contains("<mtable"), "{html}");
        let inline = r"the matrix is \(\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}\). So";
        assert_eq!(
            normalize_math_delimiters(inline),
            r"the matrix is $\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$. So"
        );
        let inline = "the matrix is \\(\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}\\). So";
        assert_eq!(
            normalize_math_delimiters(inline),
            "the matrix is $\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}$. So"
        );
    }

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
    fn padded_inline_math_is_read_as_math_and_money_stays_money() {
        assert_eq!(
            normalize_math_delimiters("is $ \\frac{48}{2} = 24 $."),
            "is $\\frac{48}{2} = 24$."
        );
        assert_eq!(
            normalize_math_delimiters("costs $5 and $10 or $ 3 $"),
            "costs $5 and $10 or $ 3 $"
        );
    }

    #[test]
    fn bare_math_environments_become_display_math() {
        assert_eq!(
            normalize_math_delimiters("So\n\\begin{align*}x &= 1\\\\\ny &= 2\\end{align*}\ndone"),
            "So\n$$\\begin{align*}x &= 1\\\\\ny &= 2\\end{align*}$$\ndone"
        );
        let inside = "$$\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}$$";
        assert_eq!(normalize_math_delimiters(inside), inside);
        let prose = "\\begin{itemize} x \\end{itemize}";
        assert_eq!(normalize_math_delimiters(prose), prose);
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
