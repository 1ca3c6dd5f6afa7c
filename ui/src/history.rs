//! History: the runs the session store kept (the desktop app's, or `k2 serve`'s), grouped by
//! session, newest first; opening one replays its stored events into the solve view exactly
//! as they streamed.

use k2_protocol::{HistoryRequest, RunView};
use k2_render::{markdown_preview, render_math};
use leptos::prelude::*;
use serde_json::Value;

use crate::app::RunState;
use crate::transport;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Item {
    id: i64,
    /// The title of the session the run is filed under.
    session: String,
    problem: String,
    status: String,
    /// When the run started, in the reader's local time ("6 Dec 2026, 18:47").
    started: Option<String>,
    answer: Option<String>,
    /// Where a search found its words (« and » around them).
    snippet: Option<String>,
    /// The student whose run it is (`k2 serve` with a class roster), for the teacher's list.
    owner: Option<String>,
}

/// Milliseconds since the epoch as the browser's locale writes a date and time.
pub(crate) fn local_date_time(ms: f64) -> String {
    let options = js_sys::Object::new();
    for (key, value) in [
        ("day", "numeric"),
        ("month", "short"),
        ("year", "numeric"),
        ("hour", "2-digit"),
        ("minute", "2-digit"),
    ] {
        // Setting a string on a fresh plain object cannot fail.
        let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
    }
    js_sys::Date::new(&ms.into())
        .to_locale_string("default", &options)
        .into()
}

/// A listing's answer (`{"runs": [...], "unreadable": [...]}`): its runs, and the stored rows
/// it left out because the database has them damaged.
fn listing(json: &str) -> (Vec<Item>, Vec<String>) {
    let listing: Value = serde_json::from_str(json).unwrap_or_default();
    let unreadable = listing
        .get("unreadable")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|row| Some(row.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let runs = listing
        .get("runs")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |runs| items(runs));
    (runs, unreadable)
}

/// What a damaged database left out of the list, in words for its reader (the repair
/// command follows it).
fn unreadable_notice(rows: usize) -> String {
    format!(
        "{rows} stored row{} of the history could not be read (the session database is damaged) \
         and {} left out. ",
        if rows == 1 { "" } else { "s" },
        if rows == 1 { "is" } else { "are" },
    )
}

fn items(runs: &[Value]) -> Vec<Item> {
    runs.iter()
        .filter_map(|run| {
            Some(Item {
                id: run.get("id")?.as_i64()?,
                session: run
                    .get("session_title")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                problem: run.get("problem")?.as_str()?.to_owned(),
                status: run
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                started: run
                    .get("started_at")
                    .and_then(Value::as_f64)
                    .map(local_date_time),
                answer: run.get("answer").and_then(Value::as_str).map(str::to_owned),
                snippet: run
                    .get("snippet")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                owner: run
                    .pointer("/owner/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

/// Runs grouped by session: sessions in the order of their first run in `items` (newest
/// first, or best match first for a search), each session's runs in that order too.
fn by_session(items: Vec<Item>) -> Vec<(String, Vec<Item>)> {
    let mut groups: Vec<(String, Vec<Item>)> = Vec::new();
    for item in items {
        match groups.iter_mut().find(|(title, _)| *title == item.session) {
            Some((_, runs)) => runs.push(item),
            None => groups.push((item.session.clone(), vec![item])),
        }
    }
    groups
}

/// What the app reads of `HistoryRequest::Show`'s answer.
#[derive(serde::Deserialize)]
struct ShownRun {
    /// The whole statement (listings cut it to its first 200 characters).
    problem_text: String,
    /// When the student asked for the solution (`k2 serve` with a class roster).
    #[serde(default)]
    revealed_at: Option<i64>,
}

/// Shows kept run `run` in the solve view (History's list, the class page): its whole problem
/// from `Show`, and Review loads its events. A run whose student asked for its solution before
/// stays shown (the server serves it whole). Not while a run streams.
pub(crate) fn open_stored(
    state: RunState,
    problem: RwSignal<String>,
    token: RwSignal<String>,
    run: i64,
) {
    if state.running.get_untracked() {
        return;
    }
    let request = HistoryRequest::Show { run };
    transport::history(&token.get_untracked(), &request, move |result| {
        let shown = result
            .and_then(|json| serde_json::from_str::<ShownRun>(&json).map_err(|e| e.to_string()));
        match shown {
            Ok(shown) if !state.running.get_untracked() => {
                problem.set(shown.problem_text);
                state.failure.set(None);
                state.view.set(RunView::default());
                state.log.set_value(Vec::new());
                state.revealed.set(shown.revealed_at.is_some());
                state.stored.set(Some(run));
            }
            Ok(_) => {}
            Err(e) => state
                .failure
                .set(Some(format!("The run cannot be opened: {e}"))),
        }
    });
}

#[component]
pub fn History(
    state: RunState,
    problem: RwSignal<String>,
    token: RwSignal<String>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let runs = RwSignal::new(Vec::<Item>::new());
    let unreadable = RwSignal::new(Vec::<String>::new());
    let failure = RwSignal::new(None::<String>);
    let query = RwSignal::new(String::new());
    let refresh = move || {
        let asked = query.get_untracked();
        let request = HistoryRequest::List {
            query: Some(asked.clone()),
        };
        transport::history(&token.get_untracked(), &request, move |result| {
            // A slower answer to an older query must not replace a newer one.
            if query.get_untracked() != asked {
                return;
            }
            match result {
                Ok(json) => {
                    failure.set(None);
                    let (listed, left_out) = listing(&json);
                    runs.set(listed);
                    unreadable.set(left_out);
                }
                Err(e) => failure.set(Some(format!("History is unavailable: {e}"))),
            }
        })
    };
    let toggle = move |_| {
        open.update(|o| *o = !*o);
        if open.get_untracked() {
            refresh();
        }
    };
    let replay = move |item: Item| open_stored(state, problem, token, item.id);
    let delete = move |item: Item| {
        let question = format!(
            "Delete this run for good?\n\n{}",
            item.problem.chars().take(120).collect::<String>()
        );
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        if confirmed {
            transport::history(
                &token.get_untracked(),
                &HistoryRequest::Delete { run: item.id },
                move |result| match result {
                    Ok(_) => refresh(),
                    Err(e) => failure.set(Some(format!("The run was not deleted: {e}"))),
                },
            );
        }
    };
    // Deleting is the teacher's (the server refuses a student).
    let can_delete = move || state.teacher_tools();
    // A finished run appears at the top of an open list.
    Effect::new(move |_| {
        if !state.running.get() && open.get_untracked() {
            refresh();
        }
    });
    view! {
        <section id="history" class="panel">
            <h2><button id="history-toggle" class="link" on:click=toggle>
                {move || if open.get() { "History ▾" } else { "History ▸" }}
            </button></h2>
            <Show when=move || failure.get().is_some()>
                <p class="error">{move || failure.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || open.get()>
                <Show when=move || !unreadable.with(Vec::is_empty)>
                    // Each left-out row in words (table, key, column) for whoever repairs it.
                    <p class="error" id="history-unreadable"
                        title=move || unreadable.get().join("\n")>
                        {move || unreadable_notice(unreadable.with(Vec::len))}
                        <code>"k2 history recover"</code>
                        " repairs the database and keeps the damaged text aside."
                    </p>
                </Show>
                <input id="history-search" type="search"
                    placeholder="Search problems, plans and answers"
                    prop:value=move || query.get()
                    on:input=move |ev| { query.set(event_target_value(&ev)); refresh(); } />
                <Show when=move || runs.with(Vec::is_empty)>
                    <p class="muted" id="history-empty">{move || if query.with(String::is_empty) {
                        "No runs kept yet."
                    } else {
                        "No run matches."
                    }}</p>
                </Show>
                <ul class="history">
                    <For each=move || by_session(runs.get())
                        key=|(title, items)| (title.clone(), items.clone()) let:group>
                        <li class="session">
                            <h3 class="session-title">{group.0.clone()}
                                <span class="muted">{format!(" · {} run{}", group.1.len(),
                                    if group.1.len() == 1 { "" } else { "s" })}</span></h3>
                            <ul class="runs">
                                {group.1.into_iter().map(|item| run_row(item, replay, delete, can_delete, !state.is_student())).collect_view()}
                            </ul>
                        </li>
                    </For>
                </ul>
            </Show>
        </section>
    }
}

/// A search snippet whose match fell inside a formula (`$\«frac{3}{4»}$`, unreadable once
/// rendered) marked around the whole formula instead (`«$\frac{3}{4}$»`).
fn marks_around_formulas(snippet: &str) -> String {
    let mut out = String::with_capacity(snippet.len() + 4);
    // The open formula: its text as written, without marks, and whether it had any.
    let mut formula: Option<(String, String, bool)> = None;
    let mut escaped = false;
    for c in snippet.chars() {
        let delimiter = c == '$' && !escaped;
        escaped = c == '\\' && !escaped;
        match (&mut formula, delimiter) {
            (None, true) => formula = Some(("$".into(), "$".into(), false)),
            (None, false) => out.push(c),
            (Some((_, bare, marked)), true) => {
                bare.push('$');
                let (open, close) = if *marked { ("«", "»") } else { ("", "") };
                out.push_str(&format!("{open}{bare}{close}"));
                formula = None;
            }
            (Some((written, bare, marked)), false) => {
                written.push(c);
                if c == '«' || c == '»' {
                    *marked = true;
                } else {
                    bare.push(c);
                }
            }
        }
    }
    // A formula the snippet cut off stays as written.
    if let Some((written, _, _)) = formula {
        out.push_str(&written);
    }
    out
}

/// One run in the list: open it, delete it, its status and answer, and where a search matched.
fn run_row(
    item: Item,
    replay: impl Fn(Item) + Copy + 'static,
    delete: impl Fn(Item) + Copy + 'static,
    can_delete: impl Fn() -> bool + Send + Sync + Copy + 'static,
    // The teacher's list names each run's student; a student's lists only their own.
    show_owner: bool,
) -> impl IntoView {
    let (open_item, delete_item) = (item.clone(), item.clone());
    view! {
        <li>
            // Problems, answers and snippets are model or user text with LaTeX: rendered (and
            // escaped) by k2-render, on one line, never cut inside a formula.
            <button class="link history-item" data-run=item.id
                on:click=move |_| replay(open_item.clone())
                inner_html=markdown_preview(&item.problem, 90)>
            </button>
            <button class="link delete" title="Delete this run" hidden=move || !can_delete()
                on:click=move |_| delete(delete_item.clone())>" delete"</button>
            <span class="muted">
                {item.owner.clone().filter(|_| show_owner).map(|o| view! { <span class="owner">{format!(" · {o}")}</span> })}
                {item.started.clone().map(|d| view! { <time class="started">{format!(" · {d}")}</time> })}
                {format!(" · {}", item.status)}
                {item.answer.clone().map(|a| view! {
                    " · answer " <span class="answer" inner_html=render_math(&a, false)></span>
                })}</span>
            {item.snippet.clone().map(|s| view! {
                <div class="snippet muted" inner_html=markdown_preview(&marks_around_formulas(&s), 240)></div>
            })}
        </li>
    }
}
