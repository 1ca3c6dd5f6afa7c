//! Model output to HTML that is safe to put in a page: Markdown through pulldown-cmark, math
//! through KaTeX (MathML, which browsers draw without fonts), raw HTML from the model shown as
//! text, links reduced to safe schemes, images to their alt text, malformed LaTeX shown as
//! marked source. One implementation for every place text is shown: teachers' exports (native)
//! and the desktop and browser UI (wasm).

mod markdown;
mod math;

pub use markdown::{markdown_preview, markdown_to_html};
pub use math::{normalize_math_delimiters, render_math};

/// Text as HTML text: the five characters that could open markup or end an attribute.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
