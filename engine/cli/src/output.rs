//! Writing to the terminal or as JSON lines.

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

pub fn print_json_line(value: &impl Serialize) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`k2 ... | head`) is not an error worth a panic.
    if let Ok(line) = serde_json::to_string(value) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
