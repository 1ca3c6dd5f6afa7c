//! Issue 28, finding 4: text that is not ours reaches the terminal with its control characters
//! shown escaped. A problem carrying OSC 52 (a clipboard write), a screen clear and a bell is
//! solved with a real model and stored; every terminal path that prints it back (`solve`,
//! `history list`, `show`, `search`, `sessions`, notes, `--events` JSON lines) prints no raw
//! ESC, BEL or other control byte, and shows the sequences as visible `\u{1b}` text.

mod common;

use std::process::Output;

use common::*;

/// OSC 52 writing "pwned" to the clipboard, a screen clear, a bell, a C1 CSI, a bidi override.
const HOSTILE: &str =
    "What is 2+2? \x1b]52;c;cHduZWQ=\x07\x1b[2J\x07 zebra \u{9b}31m \u{202e}olleh";

fn run(args: &[&str]) -> Output {
    let output = k2().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "k2 {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn history(db: &str, args: &[&str]) -> Output {
    run(&[&["history", "--db", db], args].concat())
}

/// No byte that a terminal would act on: C0 controls but newline and tab, DEL, and the UTF-8
/// of the C1 controls and bidi overrides.
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad: Vec<(usize, char)> = text
        .char_indices()
        .filter(|&(_, c)| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what} printed raw controls {bad:?}: {text}"
    );
}

#[test]
fn stored_escape_sequences_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let db = db.to_str().unwrap();
    let model = smollm();
    let solved = run(&[
        "solve",
        HOSTILE,
        "--model",
        model.to_str().unwrap(),
        "-n",
        "1",
        "--no-plan",
        "--planner",
        "solver",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "--session",
        "Class \x1b]0;retitled\x07 7B",
        "--db",
        db,
    ]);
    assert_inert("solve (stdout)", &solved.stdout);
    assert_inert("solve (stderr)", &solved.stderr);
    let shown = String::from_utf8_lossy(&solved.stdout);
    assert!(
        shown.contains("\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{1b}[2J"),
        "the sequences are shown as text: {shown}"
    );

    history(db, &["note", "1", "see \x1b[2J\x1b]52;c;eA==\x07 here"]);

    let list = history(db, &["list"]);
    assert_inert("history list", &list.stdout);
    assert!(String::from_utf8_lossy(&list.stdout).contains("\\u{1b}]52"));

    let search = history(db, &["search", "zebra"]);
    assert_inert("history search", &search.stdout);
    assert!(String::from_utf8_lossy(&search.stdout).contains("zebra"));

    let show = history(db, &["show", "1"]);
    assert_inert("history show", &show.stdout);
    assert_inert("history show (stderr)", &show.stderr);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("What is 2+2? \\u{1b}]52;c;cHduZWQ="),
        "{text}"
    );
    assert!(
        text.contains("see \\u{1b}[2J"),
        "the note is escaped: {text}"
    );

    let sessions = history(db, &["sessions"]);
    assert_inert("history sessions", &sessions.stdout);
    assert!(String::from_utf8_lossy(&sessions.stdout).contains("Class \\u{1b}]0;retitled"));

    // JSON lines keep the exact text (escaped the JSON way) and print no raw control either.
    let events = history(db, &["show", "1", "--events"]);
    assert_inert("history show --events", &events.stdout);
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&events.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["request"]["problem"], HOSTILE);
}
