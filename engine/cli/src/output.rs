//! Writing to the terminal or as JSON lines.
//!
//! Everything printed here is treated as untrusted: problem text, model output, notes, titles,
//! model names and servers' error messages reach the terminal only through [`safe`], the one
//! terminal sanitizer. Only the run renderer, which builds its own styling around text it has
//! already passed through [`safe`], prints styled text ([`print_styled`]).

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

/// Output format of streaming commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text as it is generated.
    Text,
    /// One JSON object per line; the last one has the full result.
    Jsonl,
}

/// Whether `c` could act on a terminal instead of being shown: every control character but
/// newline and tab (ESC, and so every escape sequence, BEL, carriage return, backspace, DEL,
/// the C1 controls such as CSI), and the bidirectional overrides that reorder what is shown.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [`unsafe_char`] written as a visible `\u{…}`, so text from a model, a
/// stored run or a server cannot move the cursor, clear the screen, recolour, retitle, write
/// the clipboard (OSC 52) or reorder the terminal. It works character by character, so a
/// stream may be sanitized piece by piece: an escape sequence split across two tokens is as
/// harmless as a whole one (its ESC is escaped wherever it falls). Idempotent.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out += &format!("\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One JSON value per line. serde_json already escapes the C0 controls inside strings; the
/// other characters [`safe`] would show escaped (DEL, C1 controls, bidi overrides) can only
/// occur inside strings too, and are written as `\uXXXX` escapes, which decode to the same
/// string.
pub fn print_json_line(value: &impl Serialize) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`k2 ... | head`) is not an error worth a panic.
    if let Ok(line) = serde_json::to_string(value) {
        let _ = writeln!(out, "{}", json_safe(&line));
        let _ = out.flush();
    }
}

fn json_safe(line: &str) -> Cow<'_, str> {
    if !line.chars().any(unsafe_char) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if unsafe_char(c) {
            // All of them are in the Basic Multilingual Plane: one `\uXXXX` each.
            out += &format!("\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints `text` on stdout through [`safe`].
pub fn print_text(text: &str) {
    write_stdout(&safe(text));
}

/// Prints `text` on stderr through [`safe`].
pub fn eprint_text(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(safe(text).as_bytes());
    let _ = err.flush();
}

/// `println!` through [`safe`]: for lines that show names or text read from files, models,
/// servers or the store.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_text(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`safe`].
#[macro_export]
macro_rules! eoutln {
    ($($arg:tt)*) => {
        $crate::output::eprint_text(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints text that carries the renderer's own styling (bold, dim) around parts it has passed
/// through [`safe`]. Nothing else may call this.
pub(crate) fn print_styled(text: &str) {
    write_stdout(text);
}

fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_are_shown_escaped_newlines_and_tabs_kept() {
        assert_eq!(safe("a\tb\nc\r\u{202E}"), "a\tb\nc\\u{d}\\u{202e}");
        assert_eq!(
            safe("\x1b]52;c;cHdu\x07\x1b[2J\u{9b}31m\x7f"),
            "\\u{1b}]52;c;cHdu\\u{7}\\u{1b}[2J\\u{9b}31m\\u{7f}"
        );
        assert!(matches!(safe("plain 42 ∑ é"), Cow::Borrowed(_)));
        let once = safe("\x1b[31m").into_owned();
        assert_eq!(safe(&once), once, "idempotent");
    }

    #[test]
    fn a_sequence_split_across_pieces_is_as_harmless_as_a_whole_one() {
        let pieces = ["x\x1b", "]52;c;", "cHdu\x07", "\x1b[", "2J"];
        let streamed: String = pieces.iter().map(|p| safe(p).into_owned()).collect();
        assert_eq!(streamed, safe(&pieces.concat()));
        assert!(!streamed.contains(['\x1b', '\x07']));
    }

    #[test]
    fn json_lines_keep_their_value_and_lose_raw_c1_and_overrides() {
        let value = serde_json::json!({"text": "\x1b[2J \u{9b}1m \u{202e}dlrow \x7f"});
        let line = serde_json::to_string(&value).unwrap();
        let cleaned = json_safe(&line);
        assert!(!cleaned.chars().any(unsafe_char), "{cleaned}");
        let back: serde_json::Value = serde_json::from_str(&cleaned).unwrap();
        assert_eq!(back, value);
    }
}
