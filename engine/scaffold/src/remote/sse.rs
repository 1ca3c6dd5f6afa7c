//! Server-sent events as OpenAI-compatible servers stream them: `data:` lines (several join
//! with newlines), a blank line ends an event, `:` starts a comment, `data: [DONE]` ends the
//! stream. Other fields (`event:`, `id:`, `retry:`) are ignored.
//!
//! The server is untrusted: a line longer than [`SseReader::max_line`] bytes or an event longer
//! than [`SseReader::max_event`] ends the stream with a [`LimitExceeded`] error instead of
//! growing a buffer without bound, and bytes that are not UTF-8 are read as U+FFFD.

use std::io::BufRead;

/// The longest line accepted by default: one completion chunk is a few hundred bytes; a
/// server that sends a whole answer as one chunk stays far below this.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest event (its `data:` lines joined) accepted by default.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// One parsed item of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    /// An event's data.
    Data(String),
    /// `data: [DONE]`.
    Done,
}

/// A limit on what a server may send was broken; the message says which, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded(pub String);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

impl LimitExceeded {
    /// As an I/O error, so readers can report it through `std::io`.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The limit an I/O error carries, if it is one.
    pub fn in_io(e: &std::io::Error) -> Option<&LimitExceeded> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
    }
}

/// Reads events from `reader` one at a time.
pub struct SseReader<R> {
    reader: R,
    line: Vec<u8>,
    max_line: usize,
    max_event: usize,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(reader: R) -> Self {
        SseReader {
            reader,
            line: Vec::new(),
            max_line: MAX_LINE_BYTES,
            max_event: MAX_EVENT_BYTES,
        }
    }

    /// The same reader with other limits on a line's and an event's bytes.
    pub fn with_limits(mut self, max_line: usize, max_event: usize) -> Self {
        self.max_line = max_line;
        self.max_event = max_event;
        self
    }

    /// The longest line accepted, in bytes (its line ending not counted).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The longest event accepted, in bytes.
    pub fn max_event(&self) -> usize {
        self.max_event
    }

    /// The next line into `self.line`, its ending kept; `false` at the end of the stream.
    /// Never holds more than `max_line` bytes plus the ending.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        loop {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (take, ended) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            // The line ending (`\n` or `\r\n`) is not counted against the limit; while the
            // line is open, its last byte may be the `\r` of one.
            let mut content = self.line.len() + take;
            let limit = if ended {
                content -= 1;
                let before = match take {
                    1 => self.line.last().copied(),
                    _ => Some(available[take - 2]),
                };
                if before == Some(b'\r') {
                    content -= 1;
                }
                self.max_line
            } else {
                self.max_line + 1
            };
            if content > limit {
                return Err(LimitExceeded(format!(
                    "the server sent a line of more than {} bytes in its event stream",
                    self.max_line
                ))
                .into_io());
            }
            self.line.extend_from_slice(&available[..take]);
            self.reader.consume(take);
            if ended {
                return Ok(true);
            }
        }
    }

    /// The next event, or `Ok(None)` at the end of the stream (connection closed).
    pub fn next_item(&mut self) -> std::io::Result<Option<SseItem>> {
        let mut data: Option<String> = None;
        loop {
            if !self.read_line()? {
                // A final event without its blank line still counts.
                return Ok(data.map(classify));
            }
            let text = String::from_utf8_lossy(&self.line);
            let line = text.trim_end_matches(['\r', '\n']);
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
                let joined = data.as_ref().map_or(0, |d| d.len() + 1) + value.len();
                if joined > self.max_event {
                    return Err(LimitExceeded(format!(
                        "the server sent an event of more than {} bytes in its event stream",
                        self.max_event
                    ))
                    .into_io());
                }
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

    fn items_limited(text: &[u8], line: usize, event: usize) -> Vec<std::io::Result<SseItem>> {
        let reader = std::io::BufReader::with_capacity(3, text);
        let mut reader = SseReader::new(reader).with_limits(line, event);
        let mut out = Vec::new();
        loop {
            match reader.next_item() {
                Ok(Some(item)) => out.push(Ok(item)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn a_line_at_the_limit_passes_one_past_it_is_a_limit_error() {
        // "data: " + 4 bytes = 10 bytes of line.
        let ok = items_limited(b"data: abcd\r\n\n", 10, 100);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].as_ref().unwrap(), &SseItem::Data("abcd".into()));
        let long = items_limited(b"data: abcde\n\n", 10, 100);
        let e = long.last().unwrap().as_ref().unwrap_err();
        let limit = LimitExceeded::in_io(e).expect("a limit error");
        assert!(limit.0.contains("more than 10 bytes"), "{limit}");
        // A line that never ends is stopped as soon as it passes the limit.
        let endless = vec![b'x'; 10_000];
        let e = items_limited(&endless, 64, 100).pop().unwrap().unwrap_err();
        assert!(LimitExceeded::in_io(&e).is_some());
    }

    #[test]
    fn an_event_of_many_lines_is_limited_too() {
        let mut text = Vec::new();
        for _ in 0..100 {
            text.extend_from_slice(b"data: 0123456789\n");
        }
        let e = items_limited(&text, 64, 200).pop().unwrap().unwrap_err();
        assert!(LimitExceeded::in_io(&e)
            .unwrap()
            .0
            .contains("event of more than 200 bytes"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_fatal() {
        let items = items_limited(b"data: a\xffb\n\ndata: [DONE]\n\n", 64, 64);
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].as_ref().unwrap(),
            &SseItem::Data("a\u{fffd}b".into())
        );
    }

    #[test]
    fn unterminated_last_event_is_kept_and_empty_stream_is_empty() {
        assert_eq!(items("data: tail"), vec![SseItem::Data("tail".into())]);
        assert!(items("").is_empty());
        assert!(items("\n\n: only comments\n\n").is_empty());
    }
}
