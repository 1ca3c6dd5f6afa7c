//! Markdown (model output, plans, notes) to safe HTML: math through KaTeX, raw HTML shown as
//! text (model output is untrusted), images and unsafe links reduced to their text.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::math::{normalize_math_delimiters, render_math};

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
