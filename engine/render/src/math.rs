//! LaTeX to MathML with KaTeX (katex-rs), for exports that must open anywhere without network
//! or fonts: browsers render MathML natively. Malformed LaTeX never fails an export: it is
//! shown as its source, marked, with KaTeX's message as a tooltip.

use crate::escape_html;

/// Renders one formula. `display` is a centered block (`$$…$$`, `\[…\]`).
pub fn render_math(tex: &str, display: bool) -> String {
    match katex_mathml(tex, display) {
        Ok(mathml) => boxes_as_borders(&mathml),
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

/// `\boxed{…}` (and `\fbox`) as `<mrow class="boxed">`, which the stylesheets draw with a
/// border, instead of MathML's `<menclose notation="box">`, which Chromium (MathML Core) does
/// not draw at all: boxed answers lost their box there. Other notations stay as they are.
fn boxes_as_borders(mathml: &str) -> String {
    const BOX: &str = "<menclose notation=\"box\">";
    if !mathml.contains(BOX) {
        return mathml.to_owned();
    }
    let mut out = String::with_capacity(mathml.len());
    // For each open menclose: whether it became a boxed mrow.
    let mut open: Vec<bool> = Vec::new();
    let mut rest = mathml;
    while let Some(at) = rest
        .find("<menclose")
        .into_iter()
        .chain(rest.find("</menclose>"))
        .min()
    {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("</menclose>") {
            out.push_str(if open.pop() == Some(true) {
                "</mrow>"
            } else {
                "</menclose>"
            });
            rest = after;
        } else if let Some(after) = rest.strip_prefix(BOX) {
            out.push_str("<mrow class=\"boxed\">");
            open.push(true);
            rest = after;
        } else {
            out.push_str("<menclose");
            open.push(false);
            rest = &rest["<menclose".len()..];
        }
    }
    out.push_str(rest);
    out
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
    let text = wrap_bare_math(text);
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
    "alignat",
    "alignat*",
    "alignedat",
    "equation",
    "equation*",
    "gather",
    "gather*",
    "gathered",
    "cases",
    "dcases",
    "rcases",
    "matrix",
    "pmatrix",
    "bmatrix",
    "Bmatrix",
    "vmatrix",
    "Vmatrix",
    "smallmatrix",
    "array",
];

/// Math that models write with no delimiters around it: `\begin{align}…\end{align}` (and
/// the other math environments) becomes display math, `$$…$$`, and a bare `\boxed{80}` (the
/// final answer, as models are asked to write it) inline math, `$\boxed{80}$`. Anything
/// already inside math (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`) is left alone, and so is an
/// unfinished one (a stream cut mid-formula), which stays readable source.
fn wrap_bare_math(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = next_bare_candidate(rest) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let wrapped = if inside_math(&out) || inside_code(&out) {
            None
        } else if let Some(arg) = from.strip_prefix("\\boxed") {
            // `\boxed{}` is an instruction ("put the answer in \boxed{}"), not an answer.
            balanced_group(arg)
                .filter(|&len| !arg[..len].trim_matches([' ', '{', '}']).is_empty())
                .map(|len| (from.len() - arg.len() + len, "$"))
        } else {
            bare_environment(from).map(|len| (len, "$$"))
        };
        match wrapped {
            Some((len, delimiter)) => {
                out.push_str(delimiter);
                out.push_str(&from[..len]);
                out.push_str(delimiter);
                rest = &from[len..];
            }
            None => {
                // Step over the command's name so the search goes on after it.
                let name = 1 + from[1..]
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(from.len() - 1);
                out.push_str(&from[..name]);
                rest = &from[name..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the next `\begin{` or `\boxed` starts.
fn next_bare_candidate(text: &str) -> Option<usize> {
    match (text.find("\\begin{"), text.find("\\boxed")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The length of a math environment starting `text` (`\begin{cases}…\end{cases}`), if it is
/// one of [`MATH_ENVIRONMENTS`] and closed.
fn bare_environment(text: &str) -> Option<usize> {
    let after = text.strip_prefix("\\begin{")?;
    let name = &after[..after.find('}')?];
    if !MATH_ENVIRONMENTS.contains(&name) {
        return None;
    }
    let end_tag = format!("\\end{{{name}}}");
    text.find(&end_tag).map(|end| end + end_tag.len())
}

/// The length of a `{…}` group at the start of `text` (spaces before it allowed), braces
/// balanced and `\{` `\}` not counted; `None` when it does not close.
fn balanced_group(text: &str) -> Option<usize> {
    let open = text.len() - text.trim_start_matches(' ').len();
    if !text[open..].starts_with('{') {
        return None;
    }
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in text[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `before` ends inside math: a `\[` or `\(` not yet closed, an odd number of `$$`
/// (an environment there is part of the formula, as in `\[ |x| = \begin{cases}…` or
/// `\(\begin{pmatrix}…`), or an odd number of single `$` on its last line (`$x =
/// \boxed{4}$`). A `$$…$$` block that has closed is not math any more: an environment right
/// after it is its own formula.
pub(crate) fn inside_math(before: &str) -> bool {
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let single_dollars = line
        .replace("$$", "")
        .replace("\\$", "")
        .matches('$')
        .count();
    let opened = |open: &str, close: &str| unescaped(before, open) > unescaped(before, close);
    opened("\\[", "\\]")
        || opened("\\(", "\\)")
        || before.matches("$$").count() % 2 == 1
        || single_dollars % 2 == 1
}

/// How often `delimiter` (a backslash and a bracket) occurs in `text` as a delimiter: not as
/// the end of a LaTeX line break, `\\[2pt]`.
fn unescaped(text: &str, delimiter: &str) -> usize {
    text.match_indices(delimiter)
        .filter(|&(i, _)| {
            let backslashes = text[..i].bytes().rev().take_while(|&b| b == b'\\').count();
            backslashes % 2 == 0
        })
        .count()
}

/// Whether `before` ends inside a code block (an odd number of fence lines) or a code span
/// (an odd number of backticks on its last line): LaTeX there is shown as written.
fn inside_code(before: &str) -> bool {
    let fences = before
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("```") || l.starts_with("~~~")
        })
        .count();
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    fences % 2 == 1 || line.matches('`').count() % 2 == 1
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

    /// The HTML without MathML's annotations (which keep the formula's source).
    fn shown_text(html: &str) -> String {
        html.split("<annotation")
            .map(|part| {
                part.split_once("</annotation>")
                    .map_or(part, |(_, after)| after)
            })
            .collect()
    }

    // Issue 27: a final answer written as a bare `\boxed{80}` was shown as raw source.
    #[test]
    fn a_bare_boxed_answer_becomes_math_and_math_or_code_stays_as_it_is() {
        assert_eq!(
            normalize_math_delimiters("The answer is \\boxed{80}."),
            "The answer is $\\boxed{80}$."
        );
        assert_eq!(
            normalize_math_delimiters("So \\boxed{\\frac{1}{2}} and \\boxed {x_{1}}"),
            "So $\\boxed{\\frac{1}{2}}$ and $\\boxed {x_{1}}$"
        );
        for kept in [
            "so $x = \\boxed{4}$ here",
            "$$\\boxed{4}$$",
            "cut off at \\boxed{8",
            "Put the answer in \\boxed{}.",
            "write `\\boxed{8}` like this",
            "```latex\n\\boxed{8}\n```",
        ] {
            assert_eq!(normalize_math_delimiters(kept), kept);
        }
        let html = crate::markdown_to_html("Total: \\boxed{80}");
        assert!(html.contains("<mrow class=\"boxed\">"), "{html}");
        assert!(!shown_text(&html).contains("\\boxed"), "{html}");
    }

    // Issue 27: `\begin{cases}` right after a `$$…$$` block was shown raw (the closing `$$`
    // read as an opening one).
    #[test]
    fn an_environment_after_a_closed_display_block_is_its_own_formula() {
        let text = "$$f(x) = |x|$$\n\\begin{cases} x & x \\geq 0 \\\\ -x & x < 0 \\end{cases}\n";
        assert_eq!(
            normalize_math_delimiters(text),
            "$$f(x) = |x|$$\n$$\\begin{cases} x & x \\geq 0 \\\\ -x & x < 0 \\end{cases}$$\n"
        );
        let html = crate::markdown_to_html(text);
        assert_eq!(html.matches("<math").count(), 2, "{html}");
        assert!(!shown_text(&html).contains("\\begin"), "{html}");
        let split = "$$\nf(x) =\n$$\n\\begin{dcases} 1 & x > 0 \\\\ 0 \\end{dcases}";
        assert!(normalize_math_delimiters(split)
            .ends_with("$$\\begin{dcases} 1 & x > 0 \\\\ 0 \\end{dcases}$$"));
        // A fenced LaTeX example stays code, as written.
        // A line break with a spacing, `\\[2pt]`, opens nothing.
        assert_eq!(
            normalize_math_delimiters("$$a \\\\[2pt] b$$\n\\boxed{3}"),
            "$$a \\\\[2pt] b$$\n$\\boxed{3}$"
        );
        let fenced = "```latex\n\\begin{align} x &= 1 \\end{align}\n```";
        assert_eq!(normalize_math_delimiters(fenced), fenced);
    }

    // Issue 27: Chromium does not draw MathML's menclose, so boxed answers lost their box.
    #[test]
    fn a_box_is_a_classed_row_that_css_can_draw_and_other_notations_stay() {
        let boxed = render_math("\\boxed{\\cancel{3} + \\boxed{4}}", false);
        assert!(!boxed.contains("notation=\"box\""), "{boxed}");
        assert_eq!(
            boxed.matches("<mrow class=\"boxed\">").count(),
            2,
            "{boxed}"
        );
        assert_eq!(boxed.matches("<menclose").count(), 1, "{boxed}");
        assert_eq!(boxed.matches("</menclose>").count(), 1, "{boxed}");
        assert_eq!(
            boxed.matches("<mrow").count(),
            boxed.matches("</mrow>").count(),
            "{boxed}"
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
