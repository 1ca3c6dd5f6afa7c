//! Messages that tell the user to change an option must name one the command has (issue 28:
//! "shorten the problem or raise --context" came from `k2 solve`, which has no `--context`).
//!
//! Two checks over the source of every crate whose messages reach the command line: every
//! `--option` a message names is listed in [`HINTS`] with the commands that can show it, and
//! each of those commands really has that option (`Cli::command()` introspection). A new hint
//! naming an option fails the first check until it is listed; a listed command losing the
//! option fails the second.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::Cli;

/// Every option named in a message, and every command (space-separated subcommand path) that
/// can show a message naming it.
const HINTS: &[(&str, &[&str])] = &[
    // Loading a model (`load.rs`, `k2_engine::device`): every command with `ModelArgs`.
    ("--model", &["generate", "solve", "eval", "bench", "serve"]),
    ("--device", &["generate", "solve", "eval", "bench", "serve"]),
    // Sampling settings checked in `sampling_args.rs`.
    ("--temperature", &["generate", "solve", "eval"]),
    ("--top-p", &["generate", "solve", "eval"]),
    ("--top-k", &["generate", "solve", "eval"]),
    ("--min-p", &["generate", "solve", "eval"]),
    ("--seed", &["generate", "solve", "eval"]),
    ("--max-tokens", &["generate", "solve", "eval"]),
    // Speculative decoding (`spec_setup.rs`, the engine's draft compatibility check).
    ("--spec", &["generate", "solve", "eval"]),
    ("--draft", &["generate", "solve", "eval"]),
    // Remote backends (`run_setup.rs`, `k2_scaffold::remote`).
    ("--backend", &["solve", "eval"]),
    ("--backend-model", &["solve", "eval"]),
    ("--backend-token", &["solve", "eval"]),
    ("--backend-timeout", &["solve", "eval"]),
    ("--backend-deadline", &["solve", "eval"]),
    ("--planner-backend-model", &["solve", "eval"]),
    ("--planner-backend-token", &["solve", "eval"]),
    // The session store (`k2_store` errors reach every command that opens it).
    ("--db", &["solve", "history", "serve"]),
    // Command-specific messages.
    ("--prompt", &["generate"]),
    ("--prompt-file", &["generate"]),
    ("--prompt-ids", &["bench"]),
    ("--work", &["solve"]),
    ("--resume", &["eval"]),
    ("--after", &["history list"]),
    ("--run", &["history export"]),
    ("--session", &["history export"]),
    ("--token", &["serve"]),
    ("--host", &["serve"]),
    ("--ui", &["serve"]),
    ("--no-history", &["serve"]),
    // The classroom server's roles and limits (`k2_server`; /metrics' descriptions).
    ("--roster", &["serve"]),
    ("--student-chat", &["serve"]),
    ("--max-connections", &["serve"]),
    ("--max-rows", &["serve"]),
    ("--max-waiting", &["serve"]),
];

/// Options of other programs named in our source: (file, option).
const FOREIGN: &[(&str, &str)] = &[
    // `nvidia-smi`'s arguments.
    ("engine/src/install/catalogue.rs", "--query-gpu"),
    ("engine/src/install/catalogue.rs", "--format"),
    // Cargo's, in "build with --features cuda".
    ("engine/src/device.rs", "--features"),
];

/// The crates whose messages reach `k2`'s terminal.
const SOURCES: &[&str] = &[
    "engine/src",
    "engine/scaffold/src",
    "engine/app/src",
    "engine/store/src",
    "engine/history/src",
    "engine/server/src",
    "engine/cli/src",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `--options` named outside comments and outside the file's test module.
fn options_named(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code = source.split("#[cfg(test)]").next().unwrap_or("");
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") || line.starts_with("#[arg") {
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("--") {
            let start = i + at;
            let mut end = start + 2;
            while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'-') {
                end += 1;
            }
            let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            if end > start + 2 && bytes[start + 2].is_ascii_lowercase() && before_ok {
                found.insert(line[start..end].trim_end_matches('-').to_owned());
            }
            i = end.max(start + 2);
        }
    }
    found
}

/// The long options of a subcommand path and of all its own subcommands.
fn options_of(path: &str) -> BTreeSet<String> {
    let mut command = Cli::command();
    command.build();
    let mut at = &command;
    for name in path.split(' ') {
        at = at
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("`k2 {path}` is not a command"));
    }
    let mut options = BTreeSet::new();
    let mut stack = vec![at];
    while let Some(c) = stack.pop() {
        for arg in c.get_arguments() {
            if let Some(long) = arg.get_long() {
                options.insert(format!("--{long}"));
            }
        }
        stack.extend(c.get_subcommands());
    }
    options
}

#[test]
fn every_option_a_message_names_is_listed_with_its_commands() {
    let root = repo_root();
    let mut unlisted = Vec::new();
    for dir in SOURCES {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            let relative = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // This file's own tables name every option.
            if relative.ends_with("cli/src/hint_options.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            for option in options_named(&source) {
                let listed = HINTS.iter().any(|(o, _)| *o == option);
                let foreign = FOREIGN.iter().any(|&(f, o)| f == relative && o == option);
                if !listed && !foreign {
                    unlisted.push(format!("{relative}: {option}"));
                }
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "messages name options not listed in HINTS (add them with the commands that can show \
         the message, or reword the message): {unlisted:#?}"
    );
}

#[test]
fn every_command_that_can_show_a_hint_has_its_option() {
    let mut missing = Vec::new();
    for (option, commands) in HINTS {
        for command in *commands {
            if !options_of(command).contains(*option) {
                missing.push(format!("k2 {command} has no {option}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn the_scanner_finds_options_in_strings_and_skips_comments_and_tests() {
    let source = "// raise --ignored\nlet e = \"raise --context, or --spec ngram\";\n\
                  #[cfg(test)]\nmod tests { \"--also-ignored\" }";
    let found: Vec<String> = options_named(source).into_iter().collect();
    assert_eq!(found, ["--context", "--spec"]);
    assert!(options_of("serve").contains("--context"));
    assert!(!options_of("solve").contains("--context"));
}
