//! `k2 history`: the session store without the desktop app: list runs with their status,
//! search, replay a run in the terminal, export it for a teacher, add notes, import and export
//! problem sets, and recover from a damaged database.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use k2_store::export::{export_run, export_session, ExportFormat};
use k2_store::{format_utc, Cursor, PageRequest, Quarantined, RunSummary, Store};

use crate::output::{print_json_line, print_text, Format};
use crate::render::TerminalRenderer;
use crate::store_setup::{runtime, StoreArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Runs, newest first, with their status.
    List {
        /// Only the runs of this session (its id).
        #[arg(long)]
        session: Option<i64>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        after: Option<Cursor>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Sessions, most recently used first.
    Sessions {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        archived: bool,
    },
    /// Full-text search over problems, plans and answers.
    Search {
        text: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Replays a run in the terminal as it streamed.
    Show {
        run: i64,
        /// Print the stored events as JSON lines instead.
        #[arg(long)]
        events: bool,
    },
    /// Exports a run or a whole session as Markdown or standalone HTML.
    Export {
        /// The run to export.
        #[arg(long, conflicts_with = "session", required_unless_present = "session")]
        run: Option<i64>,
        /// The session to export (all its runs).
        #[arg(long)]
        session: Option<i64>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: ExportKind,
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Adds a teacher's note to a run, or to one point of it.
    Note {
        run: i64,
        text: String,
        /// The event (its seq, as `show --events` prints) the note refers to.
        #[arg(long)]
        at: Option<u64>,
        #[arg(long)]
        author: Option<String>,
    },
    /// Imports a JSONL problem set (`id`, `problem`, `answer`, optional `solution`).
    Import {
        file: PathBuf,
        /// The set's name [default: the file name without extension].
        #[arg(long)]
        set: Option<String>,
        /// Import the good lines and report the malformed ones (default: all or nothing).
        #[arg(long)]
        partial: bool,
    },
    /// Writes a stored problem set as JSONL.
    ExportSet {
        name: String,
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Repairs unreadable rows (their original bytes kept in the database's quarantine table),
    /// or moves a damaged database aside (kept next to it) and starts a new one.
    Recover,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExportKind {
    Markdown,
    Html,
}

pub fn run(args: Args) -> Result<()> {
    if let HistoryCommand::Recover = args.command {
        return recover(&args.store);
    }
    let (runtime, store) = args.store.open()?;
    let result = runtime.block_on(execute(&store, args.command));
    warn_unreadable(&store);
    result
}

/// Names the rows a listing skipped because they could not be read, and what repairs them.
fn warn_unreadable(store: &Store) {
    let skipped = store.take_unreadable();
    for row in &skipped {
        eprintln!("warning: skipped {row}");
    }
    if !skipped.is_empty() {
        eprintln!(
            "warning: {} unreadable row(s) left out; `k2 history recover` repairs them and keeps \
             their original bytes",
            skipped.len()
        );
    }
}

async fn execute(store: &Store, command: HistoryCommand) -> Result<()> {
    match command {
        HistoryCommand::List {
            session,
            limit,
            after,
            format,
        } => {
            let page = store
                .list_runs(session, PageRequest { limit, after })
                .await?;
            if format == Format::Jsonl {
                page.items.iter().for_each(print_json_line);
            } else {
                if page.items.is_empty() {
                    print_text("No runs stored yet. `k2 solve \"…\"` stores its runs here.\n");
                }
                page.items.iter().for_each(print_summary);
                if let Some(next) = page.next {
                    print_text(&format!("more: k2 history list --after {next}\n"));
                }
            }
        }
        HistoryCommand::Sessions { limit, archived } => {
            let page = store
                .list_sessions(PageRequest::first(limit), archived)
                .await?;
            for s in page.items {
                print_text(&format!(
                    "{:>5}  {}  {:>4} run(s)  {}{}\n",
                    s.id,
                    format_utc(s.updated_at),
                    s.runs,
                    s.title,
                    if s.archived { " (archived)" } else { "" }
                ));
            }
        }
        HistoryCommand::Search { text, limit } => {
            let hits = store.search(&text, limit).await?;
            if hits.is_empty() {
                print_text("Nothing found.\n");
            }
            for hit in hits {
                print_summary(&hit.run);
                print_text(&format!("       {}\n", one_line(&hit.snippet)));
            }
        }
        HistoryCommand::Show { run, events } => {
            let detail = store.run(run).await?;
            let log = store.events(run).await?;
            if events {
                log.iter().for_each(print_json_line);
                return Ok(());
            }
            let candidates = detail.config.settings.candidates;
            let mut renderer = TerminalRenderer::new(candidates);
            log.iter().for_each(|event| renderer.show(event));
            print_text(&format!(
                "\nrun {run}: {} · started {} · {} events\n",
                detail.summary.status,
                format_utc(detail.summary.started_at),
                log.len()
            ));
            for note in store.notes(run).await? {
                let place = note.seq.map_or("run".into(), |s| format!("event {s}"));
                print_text(&format!(
                    "note ({place}, {}): {}\n",
                    note.author.as_deref().unwrap_or("teacher"),
                    note.text
                ));
            }
        }
        HistoryCommand::Export {
            run,
            session,
            format,
            out,
        } => {
            let format = match format {
                ExportKind::Markdown => ExportFormat::Markdown,
                ExportKind::Html => ExportFormat::Html,
            };
            let document = match (run, session) {
                (Some(run), _) => export_run(&store.load_run_export(run).await?, format),
                (None, Some(session)) => {
                    let (info, runs) = store.load_session_export(session).await?;
                    export_session(&info, &runs, format)
                }
                (None, None) => bail!("name a --run or a --session to export"),
            };
            write_out(out.as_deref(), &document)?;
        }
        HistoryCommand::Note {
            run,
            text,
            at,
            author,
        } => {
            store.run(run).await?;
            if let Some(seq) = at {
                let count = store.event_count(run).await?;
                if seq >= count {
                    bail!(
                        "run {run} has events 0 to {}; there is no event {seq}",
                        count.saturating_sub(1)
                    );
                }
            }
            let id = store.add_note(run, at, author.as_deref(), &text).await?;
            print_text(&format!("note {id} added to run {run}\n"));
        }
        HistoryCommand::Import { file, set, partial } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading the problem set {}", file.display()))?;
            let name = set.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "problems".into())
            });
            let report = store
                .import_problem_set(&name, &text, partial)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            print_text(&format!(
                "imported {} problem(s) into set `{name}`\n",
                report.imported
            ));
            for skipped in &report.skipped {
                print_text(&format!("skipped {skipped}\n"));
            }
        }
        HistoryCommand::ExportSet { name, out } => {
            let jsonl = store.export_problem_set(&name).await?;
            if jsonl.is_empty() {
                bail!("there is no problem set `{name}` (k2 history import FILE adds one)");
            }
            write_out(out.as_deref(), &jsonl)?;
        }
        HistoryCommand::Recover => unreachable!("handled before opening"),
    }
    Ok(())
}

fn recover(args: &StoreArgs) -> Result<()> {
    let path = args.path();
    let runtime = runtime()?;
    match runtime.block_on(Store::open(&path)) {
        Ok(store) => match runtime.block_on(store.integrity_check()) {
            Ok(()) => {
                // SQLite finds the file sound; single values it accepts may still not read.
                match runtime.block_on(store.quarantine_unreadable()) {
                    Ok(quarantined) => {
                        report_quarantine(&path, &quarantined);
                        return Ok(());
                    }
                    // A value that cannot be repaired in place: the whole file is set aside.
                    Err(e) => eprintln!("{e}"),
                }
            }
            Err(e) => crate::eoutln!("{e}"),
        },
        Err(e) if e.is_corrupt() => crate::eoutln!("{e}"),
        Err(e) => return Err(e.into()),
    }
    let (_, kept) = runtime.block_on(Store::set_aside_and_start_fresh(&path))?;
    print_text(&format!(
        "Started a new session database at {}; the damaged one is kept as {}.\n",
        path.display(),
        kept.display()
    ));
    Ok(())
}

/// What `recover` did on a sound file: nothing, or the values it quarantined.
fn report_quarantine(path: &std::path::Path, quarantined: &[Quarantined]) {
    if quarantined.is_empty() {
        print_text(&format!("{} is healthy; nothing to do.\n", path.display()));
        return;
    }
    for q in quarantined {
        print_text(&format!(
            "quarantined {} row {}: its {} was not UTF-8 ({} bytes kept in the quarantine \
             table; the row now reads with U+FFFD in their place)\n",
            q.table, q.key, q.column, q.bytes
        ));
    }
    print_text(&format!(
        "{} repaired: {} unreadable value(s) quarantined, the rest of the history untouched.\n",
        path.display(),
        quarantined.len()
    ));
}

fn print_summary(run: &RunSummary) {
    print_text(&format!(
        "{:>5}  {}  {:<11}  {:<14}  {}\n",
        run.id,
        format_utc(run.started_at),
        run.status.as_str(),
        run.answer
            .as_deref()
            .map_or("-".into(), |a| truncate(a, 14)),
        truncate(&one_line(&run.problem), 70)
    ));
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        text.chars().take(chars - 1).collect::<String>() + "…"
    }
}

fn write_out(out: Option<&std::path::Path>, text: &str) -> Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            print_text(text);
            Ok(())
        }
    }
}
