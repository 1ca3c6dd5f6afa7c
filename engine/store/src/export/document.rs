//! The shape of an export, independent of its format: a title, and per run a heading, a few
//! facts and sections whose bodies are Markdown (as the models and teachers wrote them).

use k2_protocol::{
    Event, FinishReason, RecordedWorkCheck, RunView, SelectionMethod, StudentRecord, WorkCertainty,
};

use crate::clock::format_utc;
use crate::types::{Note, Session};

use super::RunExport;

pub struct Document {
    pub title: String,
    pub runs: Vec<RunSection>,
}

pub struct RunSection {
    pub heading: String,
    pub facts: Vec<(String, String)>,
    pub sections: Vec<Section>,
}

pub struct Section {
    pub heading: String,
    /// Markdown.
    pub body: String,
    /// Long and secondary (a reasoning trace): shown folded in HTML.
    pub folded: bool,
}

impl Document {
    pub fn of_run(run: &RunExport) -> Document {
        Document {
            title: format!("K2 Tutor run {}", run.detail.summary.id),
            runs: vec![RunSection::of(run)],
        }
    }

    pub fn of_session(session: &Session, runs: &[RunExport]) -> Document {
        Document {
            title: format!("K2 Tutor session: {}", session.title),
            runs: runs.iter().map(RunSection::of).collect(),
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for run in &self.runs {
            out.push_str(&format!("\n## {}\n\n", run.heading));
            for (name, value) in &run.facts {
                out.push_str(&format!("- **{name}:** {value}\n"));
            }
            for section in &run.sections {
                out.push_str(&format!(
                    "\n### {}\n\n{}\n",
                    section.heading,
                    section.body.trim_end()
                ));
            }
        }
        out
    }
}

impl RunSection {
    fn of(run: &RunExport) -> RunSection {
        let detail = &run.detail;
        let view = &run.view;
        let settings = &detail.config.settings;
        let sampling = &settings.sampling;
        let mut facts = vec![
            ("Session".into(), detail.summary.session_title.clone()),
            ("Started".into(), format_utc(detail.summary.started_at)),
            ("Status".into(), detail.summary.status.to_string()),
            ("Solver".into(), detail.config.solver.clone()),
            (
                "Settings".into(),
                format!(
                    "{} candidate(s), {}, select {}, temperature {}, top-p {}, up to {} tokens, seed {}",
                    settings.candidates,
                    if settings.plan { "with plan" } else { "no plan" },
                    settings.selection,
                    sampling.temperature,
                    sampling.top_p,
                    sampling.max_tokens,
                    sampling.seed
                ),
            ),
            ("Device".into(), detail.config.device.clone()),
        ];
        if let Some(planner) = &detail.config.planner {
            facts.insert(4, ("Planner and judge".into(), planner.clone()));
        }
        if let Some(set) = &detail.problem.set_name {
            let id = detail.problem.set_id.clone().unwrap_or_default();
            facts.push(("Problem set".into(), format!("{set}, problem {id}")));
        }
        if let Some(known) = &detail.problem.known_answer {
            facts.push(("Known answer".into(), format!("${known}$")));
        }
        if let Some(error) = detail.error.as_ref().or(view.error.as_ref()) {
            facts.push(("Error".into(), error.clone()));
        }

        let mut sections = vec![Section {
            heading: "Problem".into(),
            body: detail.problem.text.clone(),
            folded: false,
        }];
        if !view.plan.is_empty() {
            sections.push(Section {
                heading: "Plan".into(),
                body: view.plan.clone(),
                folded: false,
            });
        }
        let chosen = view.final_answer.as_ref().map(|f| f.candidate);
        for (index, candidate) in view.candidates.iter().enumerate() {
            let mut heading = format!("Candidate {}", index + 1);
            if let Some(outcome) = &candidate.finished {
                let answer = outcome
                    .answer
                    .as_deref()
                    .map_or("no answer".into(), |a| format!("answer ${a}$"));
                heading.push_str(&format!(
                    ": {answer}, {} tokens, {:.1} s{}",
                    outcome.tokens,
                    outcome.seconds,
                    finish_note(outcome.finish)
                ));
            } else {
                heading.push_str(" (unfinished)");
            }
            if chosen == Some(index) {
                heading.push_str(" (chosen)");
            }
            if !candidate.reasoning.is_empty() {
                sections.push(Section {
                    heading: format!("{heading}: reasoning"),
                    body: candidate.reasoning.clone(),
                    folded: true,
                });
            }
            sections.push(Section {
                heading,
                body: if candidate.answer_text.is_empty() {
                    "*(no written solution)*".into()
                } else {
                    candidate.answer_text.clone()
                },
                folded: false,
            });
        }
        if let Some(verification) = verification(view) {
            sections.push(Section {
                heading: "Verification".into(),
                body: verification,
                folded: false,
            });
        }
        if let Some(final_answer) = &view.final_answer {
            let answer = final_answer.answer.as_deref().map_or(
                "*(the chosen candidate gave no final answer)*".into(),
                |a| format!("$$\\boxed{{{a}}}$$"),
            );
            sections.push(Section {
                heading: "Answer".into(),
                body: format!(
                    "{answer}\n\nCandidate {} chosen {}.",
                    final_answer.candidate + 1,
                    method_note(final_answer.method)
                ),
                folded: false,
            });
        }
        if let Some(correction) = correction(&run.record) {
            sections.push(Section {
                heading: "Teacher's correction".into(),
                body: correction,
                folded: false,
            });
        }
        if let Some(work) = student_work(&run.record) {
            sections.push(Section {
                heading: "Student's work".into(),
                body: work,
                folded: false,
            });
        }
        if !run.notes.is_empty() {
            sections.push(Section {
                heading: "Teacher notes".into(),
                body: notes(&run.notes, &run.events),
                folded: false,
            });
        }
        let mut problem_line: String = detail.problem.text.lines().next().unwrap_or("").into();
        if problem_line.chars().count() > 80 {
            problem_line = problem_line.chars().take(79).collect::<String>() + "…";
        }
        RunSection {
            heading: format!("Run {}: {problem_line}", detail.summary.id),
            facts,
            sections,
        }
    }
}

fn finish_note(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Complete => "",
        FinishReason::MaxTokens => ", stopped at the token limit",
        FinishReason::ContextFull => ", stopped when the context was full",
        FinishReason::Cancelled => ", cancelled",
        FinishReason::Loop => ", stopped because it repeated itself",
    }
}

fn method_note(method: SelectionMethod) -> &'static str {
    match method {
        SelectionMethod::Single => "as the only candidate",
        SelectionMethod::Vote => "by majority vote of equivalent answers",
        SelectionMethod::Judge => "by the pairwise judge",
        SelectionMethod::Unanimous => "unanimously (all answers were equivalent)",
    }
}

fn verification(view: &RunView) -> Option<String> {
    if view.groups.is_empty() && view.verdicts.is_empty() {
        return None;
    }
    let mut out = String::new();
    for group in &view.groups {
        let members: Vec<String> = group
            .candidates
            .iter()
            .map(|c| (c + 1).to_string())
            .collect();
        out.push_str(&format!(
            "- Answer ${}$: candidate(s) {}\n",
            group.answer,
            members.join(", ")
        ));
    }
    if !view.verdicts.is_empty() {
        out.push('\n');
    }
    for verdict in &view.verdicts {
        let outcome = match verdict.winner {
            Some(winner) => format!("candidate {} is better", winner + 1),
            None => "a tie".into(),
        };
        out.push_str(&format!(
            "- **Candidate {} against {}:** {outcome}. {}\n",
            verdict.first + 1,
            verdict.second + 1,
            verdict.rationale.trim()
        ));
    }
    Some(out)
}

fn notes(notes: &[Note], events: &[Event]) -> String {
    let mut out = String::new();
    for note in notes {
        let author = note.author.as_deref().unwrap_or("teacher");
        let place = match note.seq {
            None => "on the whole run".to_string(),
            Some(seq) => match events.iter().find(|e| e.seq as i64 == seq) {
                Some(event) => format!(
                    "at {:.1} s (event {seq}, {})",
                    event.elapsed_ms as f64 / 1000.0,
                    event.kind.kind_name().replace('_', " ")
                ),
                None => format!("at event {seq}"),
            },
        };
        out.push_str(&format!("- *{author}, {place}:* {}\n", note.text.trim()));
    }
    out
}

/// The correction in force and the ones it replaced. Teachers' text, escaped all the same.
fn correction(record: &StudentRecord) -> Option<String> {
    let current = record.correction.as_ref()?;
    let by = |author: &Option<String>, at: i64| match author.as_deref() {
        Some(author) => format!("{}, {}", markdown_text(author), format_utc(at)),
        None => format_utc(at),
    };
    let mut out = format!(
        "A teacher corrected the run's answer to {} ({}); students' answers are checked \
         against it.\n",
        answer_markdown(&current.answer),
        by(&current.author, current.created_at)
    );
    if let Some(note) = &current.note {
        out.push_str(&format!("\n> *Note:* {}\n", markdown_text(note)));
    }
    if !record.earlier_corrections.is_empty() {
        out.push_str("\nEarlier corrections, replaced:\n\n");
        for earlier in &record.earlier_corrections {
            out.push_str(&format!(
                "- {} ({})\n",
                answer_markdown(&earlier.answer),
                by(&earlier.author, earlier.created_at)
            ));
        }
    }
    Some(out)
}

/// The student's work: the summary line, each attempt with its check, each checked work with
/// its verdict and the work itself, each hint opened. Students' text is untrusted: escaped,
/// their answers shown as math only where that is safe, their work as escaped text.
fn student_work(record: &StudentRecord) -> Option<String> {
    let summary = record.summary()?;
    let mut out = format!("Summary: {}.\n\n", markdown_text(&summary));
    for attempt in &record.attempts {
        let check = match attempt.check {
            Some(check) => format!(
                "**{}** (checked against {})",
                check.verdict,
                check.basis.describe()
            ),
            None => "not checked".into(),
        };
        out.push_str(&format!(
            "- {}: answered {}: {check}\n",
            format_utc(attempt.created_at),
            answer_markdown(&attempt.answer)
        ));
    }
    for work in &record.work_checks {
        out.push_str(&work_check(work));
    }
    for hint in &record.hints {
        let of = if record.ladder > 0 {
            format!(" of {}", record.ladder)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "- {}: opened hint {}{of}\n",
            format_utc(hint.created_at),
            hint.level
        ));
    }
    Some(out)
}

/// One checked work as a list item: when, the verdict (the first wrong step, what is wrong
/// there and how sure the tutor is; the final answer; the basis), then the work, quoted line
/// by line as text.
fn work_check(work: &RecordedWorkCheck) -> String {
    let check = &work.check;
    let steps = if check.steps == 1 { "step" } else { "steps" };
    let verdict = match &check.first_wrong {
        Some(wrong) => {
            let certainty = match wrong.certainty {
                WorkCertainty::Sure => "sure",
                WorkCertainty::Unsure => "unsure: another correct route could give it",
            };
            format!(
                "**{}**, {} ({certainty}): {}; final answer: **{}**",
                check.verdict(),
                wrong.kind.describe(),
                answer_markdown(&wrong.text),
                check.final_answer
            )
        }
        None => format!("**{}**", check.verdict()),
    };
    let mut out = format!(
        "- {}: checked work ({} {steps}): {verdict} (checked against {})\n",
        format_utc(work.created_at),
        check.steps,
        check.basis.describe()
    );
    let lines: Vec<&str> = work
        .work
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for (i, line) in lines.iter().enumerate() {
        // A backslash at the end of a line is a hard break; the last line needs none.
        let end = if i + 1 < lines.len() { "\\" } else { "" };
        out.push_str(&format!("  > {}{end}\n", line_text(line)));
    }
    // The verifier model's opinion, kept apart from what the numbers decided.
    if let Some(doubt) = &check.model_doubt {
        out.push_str(&format!(
            "\n  {} (step {}): {}\n",
            capitalized(doubt.kind.describe()),
            doubt.step,
            line_text(&doubt.message)
        ));
    }
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A line of someone's text as Markdown that shows exactly it, at the start of a line: as
/// [`markdown_text`], with what would start a block there (`#`, `-`, `+`, `=`, `1.`, `1)`)
/// escaped too.
fn line_text(line: &str) -> String {
    let text = markdown_text(line);
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let after = text[digits..].chars().next();
    if text.starts_with(['#', '-', '+', '=']) {
        format!("\\{text}")
    } else if digits > 0 && matches!(after, Some('.' | ')')) {
        format!("{}\\{}", &text[..digits], &text[digits..])
    } else {
        text
    }
}

/// Text as Markdown that shows exactly that text, inside a line (never at its start, where
/// `#`, `-` or `1.` would start a block): HTML's special characters as entities (so neither a
/// Markdown viewer nor our HTML export runs any of it), and the punctuation that Markdown
/// reads inside a line (emphasis, links, code, math, tables) backslash-escaped.
fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '$' | '|' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// An answer someone typed: inline math (rendered as the run's answers are) when it is one
/// line with nothing that could end the formula or be read as HTML, else escaped text.
fn answer_markdown(answer: &str) -> String {
    let answer = answer.trim();
    let plain = !answer.is_empty()
        && !answer.ends_with('\\')
        && !answer
            .chars()
            .any(|c| matches!(c, '$' | '<' | '>' | '&' | '`' | '\n' | '\r'));
    if plain {
        format!("${answer}$")
    } else {
        format!("“{}”", markdown_text(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::line_text;

    #[test]
    fn a_line_of_work_starts_no_block() {
        assert_eq!(line_text("# 6 sides"), "\\# 6 sides");
        assert_eq!(line_text("- 3 = 4"), "\\- 3 = 4");
        assert_eq!(line_text("12. then"), "12\\. then");
        assert_eq!(line_text("12 + 3 = 15"), "12 + 3 = 15");
        assert_eq!(line_text("<b>*x*</b>"), "&lt;b&gt;\\*x\\*&lt;/b&gt;");
    }
}
