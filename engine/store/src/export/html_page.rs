//! A standalone HTML page: inline styles, MathML, and a Content-Security-Policy that forbids
//! scripts and every network fetch.

use super::document::Document;
use super::escape_html;
use k2_render::markdown_to_html;

const STYLE: &str = "\
body{font:16px/1.55 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2430;background:#fff;margin:0}\
main{max-width:48rem;margin:2rem auto;padding:0 1.25rem}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #d8dde6;padding-bottom:.3rem;margin-top:2.5rem}\
h3{font-size:1.05rem;margin-top:1.6rem}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.9rem;color:#4a5568}\
dl.facts dt{font-weight:600}dl.facts dd{margin:0}\
details{border:1px solid #d8dde6;border-radius:6px;padding:.4rem .8rem;margin:1rem 0;background:#f7f9fc}\
details summary{cursor:pointer;font-weight:600}\
pre{background:#f1f3f7;padding:.7rem;border-radius:6px;overflow-x:auto}\
code{font-family:ui-monospace,'Cascadia Mono',Menlo,monospace;font-size:.9em}\
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #cbd2dc;padding:.3rem .6rem}\
math[display=block]{margin:.8rem 0}\
mrow.boxed{border:1px solid;padding:.1em .3em}\
.math-error{color:#b42318;background:#fef3f2;border-bottom:1px dotted #b42318}\
@media print{details{border:none;background:none}}";

pub fn page(document: &Document) -> String {
    let mut body = format!("<h1>{}</h1>\n", escape_html(&document.title));
    for run in &document.runs {
        body.push_str(&format!(
            "<article>\n<h2>{}</h2>\n<dl class=\"facts\">\n",
            inline_markdown(&run.heading)
        ));
        for (name, value) in &run.facts {
            body.push_str(&format!(
                "<dt>{}</dt><dd>{}</dd>\n",
                escape_html(name),
                inline_markdown(value)
            ));
        }
        body.push_str("</dl>\n");
        for section in &run.sections {
            let heading = inline_markdown(&section.heading);
            let content = markdown_to_html(&section.body);
            if section.folded {
                body.push_str(&format!(
                    "<details><summary>{heading}</summary>\n{content}</details>\n"
                ));
            } else {
                body.push_str(&format!(
                    "<section><h3>{heading}</h3>\n{content}</section>\n"
                ));
            }
        }
        body.push_str("</article>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"K2 Tutor\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape_html(&document.title)
    )
}

/// Markdown that belongs on one line (a heading, a fact): rendered without the paragraph.
fn inline_markdown(text: &str) -> String {
    let html = markdown_to_html(text);
    let trimmed = html.trim_end();
    trimmed
        .strip_prefix("<p>")
        .and_then(|s| s.strip_suffix("</p>"))
        .unwrap_or(trimmed)
        .to_owned()
}
