//! Markdown (model output, plans, notes) to safe HTML: math through KaTeX, raw HTML shown as
//! text (model output is untrusted), images and unsafe links reduced to their text.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::math::{inside_math, normalize_math_delimiters, render_math};

pub fn markdown_to_html(markdown: &str) -> String {
    let text = normalize_math_delimiters(markdown);
    let options = Options::ENABLE_MATH
        | Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    // Whether each open link was kept, so a removed link's end is removed too.
    let mut links_kept: Vec<bool> = Vec::new();
    let events = Parser::new_ext(&text, options).map(|event| match event {
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let keep = is_safe_link(dest_url);
            links_kept.push(keep);
            if keep {
                event
            } else {
                Event::Text(format!("[link to {dest_url} removed: ").into())
            }
        }
        Event::End(TagEnd::Link) => match links_kept.pop() {
            Some(false) => Event::Text(CowStr::Borrowed("]")),
            _ => event,
        },
        other => make_safe(other),
    });
    let mut out = String::with_capacity(text.len() * 2);
    html::push_html(&mut out, events);
    out
}

/// A one-line preview of Markdown (a history title, a search snippet): its first `max_chars`
/// characters or so, never cut inside a formula, on one line, its math inline, rendered
/// without a paragraph around it; "…" where something was left out.
pub fn markdown_preview(text: &str, max_chars: usize) -> String {
    let flat = normalize_math_delimiters(&text.split_whitespace().collect::<Vec<_>>().join(" "))
        .replace("$$", "$");
    // The last space within the limit that is outside math; else the first after it.
    let spaces: Vec<usize> = flat
        .match_indices(' ')
        .map(|(i, _)| i)
        .filter(|&i| !inside_math(&flat[..i]))
        .collect();
    let limit = flat
        .char_indices()
        .nth(max_chars)
        .map_or(flat.len(), |(i, _)| i);
    let cut = if limit == flat.len() {
        flat.len()
    } else {
        spaces
            .iter()
            .rev()
            .find(|&&i| i <= limit)
            .or_else(|| spaces.iter().find(|&&i| i > limit))
            .copied()
            .unwrap_or(flat.len())
    };
    let html = markdown_to_html(&flat[..cut]);
    let trimmed = html.trim_end();
    let mut line = trimmed
        .strip_prefix("<p>")
        .and_then(|s| s.strip_suffix("</p>"))
        .unwrap_or(trimmed)
        .to_owned();
    if cut < flat.len() {
        line.push('…');
    }
    line
}

fn make_safe(event: Event<'_>) -> Event<'_> {
    match event {
        Event::InlineMath(tex) => Event::InlineHtml(render_math(&tex, false).into()),
        Event::DisplayMath(tex) => Event::InlineHtml(render_math(&tex, true).into()),
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        // An exported file must not fetch anything: images become their alt text.
        Event::Start(Tag::Image { .. }) => Event::Text(CowStr::Borrowed("[image: ")),
        Event::End(TagEnd::Image) => Event::Text(CowStr::Borrowed("]")),
        other => other,
    }
}

fn is_safe_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:", "#"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_escaped_and_math_rendered() {
        let html = markdown_to_html(
            "<script>alert(1)</script>\n\nSo \\(x^2\\) is <b>bold</b>.\n\n$$\\boxed{4}$$",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert!(html.contains("<math"), "{html}");
        assert!(html.contains("display=\"block\""), "{html}");
    }

    // Issue 27: History showed problems as raw LaTeX.
    #[test]
    fn a_preview_renders_its_math_on_one_line_and_never_cuts_a_formula() {
        let problem = "What is $\\frac{3}{4} + \\frac{1}{4}$? Put the answer in \\boxed{}.\n\nShow <b>work</b>.";
        let whole = markdown_preview(problem, 200);
        assert!(
            whole.starts_with("What is <span class=\"katex\"><math"),
            "{whole}"
        );
        assert!(whole.ends_with("Show &lt;b&gt;work&lt;/b&gt;."), "{whole}");
        assert!(!whole.contains("<p>") && !whole.contains('…'), "{whole}");
        // The limit falls inside the formula: the cut comes before it.
        let cut = markdown_preview(problem, 14);
        assert_eq!(cut, "What is…");
        let display = markdown_preview("Solve \\[x^2 = 4\\] for x", 200);
        assert_eq!(display.matches("<math").count(), 1, "{display}");
        assert!(!display.contains("display=\"block\""), "{display}");
    }

    #[test]
    fn images_and_script_links_fetch_and_run_nothing() {
        let html = markdown_to_html("![cat](http://example.com/cat.png) [x](javascript:alert(1))");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("[image: cat]"), "{html}");
        assert_eq!(
            html.matches("<a").count(),
            html.matches("</a>").count(),
            "{html}"
        );
    }
}
