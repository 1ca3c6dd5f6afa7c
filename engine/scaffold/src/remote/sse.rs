//! Server-sent events as OpenAI-compatible servers stream them: `data:` lines (several join
//! with newlines), a blank line ends an event, `:` starts a comment, `data: [DONE]` ends the
//! stream. Other fields (`event:`, `id:`, `retry:`) are ignored.

use std::io::BufRead;

/// One parsed item of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    /// An event's data.
    Data(String),
    /// `data: [DONE]`.
    Done,
}

/// Reads events from `reader` one at a time.
pub struct SseReader<R> {
    reader: R,
    line: String,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(reader: R) -> Self {
        SseReader {
            reader,
            line: String::new(),
        }
    }

    /// The next event, or `Ok(None)` at the end of the stream (connection closed).
    pub fn next_item(&mut self) -> std::io::Result<Option<SseItem>> {
        let mut data: Option<String> = None;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                // A final event without its blank line still counts.
                return Ok(data.map(classify));
            }
            let line = self.line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                match data.take() {
                    Some(d) => return Ok(Some(classify(d))),
                    None => continue,
                }
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            if field == "data" {
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                }
            }
        }
    }
}

fn classify(data: String) -> SseItem {
    if data.trim() == "[DONE]" {
        SseItem::Done
    } else {
        SseItem::Data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<SseItem> {
        let mut reader = SseReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn events_comments_multiline_and_done() {
        let text = ": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\ndata: line1\ndata: line2\r\n\r\ndata:[DONE]\n\n";
        assert_eq!(
            items(text),
            vec![
                SseItem::Data("{\"a\":1}".into()),
                SseItem::Data("line1\nline2".into()),
                SseItem::Done
            ]
        );
    }

    #[test]
    fn unterminated_last_event_is_kept_and_empty_stream_is_empty() {
        assert_eq!(items("data: tail"), vec![SseItem::Data("tail".into())]);
        assert!(items("").is_empty());
        assert!(items("\n\n: only comments\n\n").is_empty());
    }
}
