//! Exports for teachers: a run or a whole session as Markdown, or as one standalone HTML file
//! (math as MathML, styles inline, a Content-Security-Policy that forbids every fetch), so it
//! opens offline on any machine.

mod document;
mod html_page;

pub use document::{Document, RunSection, Section};
pub use k2_render::{markdown_to_html, normalize_math_delimiters, render_math};

use k2_protocol::{Event, RunView, StudentRecord};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::types::{Note, PageRequest, RunDetail, RunId, Session, SessionId};
use crate::Store;

/// Everything an export of one run shows.
#[derive(Debug, Clone, Serialize)]
pub struct RunExport {
    pub detail: RunDetail,
    pub events: Vec<Event>,
    pub view: RunView,
    pub notes: Vec<Note>,
    /// The teacher's corrections and the student's work.
    pub record: StudentRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Markdown,
    Html,
}

impl Store {
    pub async fn load_run_export(&self, run: RunId) -> Result<RunExport> {
        let detail = self.run(run).await?;
        let events = self.events(run).await?;
        let view = RunView::replay(&events);
        let notes = self.notes(run).await?;
        let record = self.student_record(run).await?;
        Ok(RunExport {
            detail,
            events,
            view,
            notes,
            record,
        })
    }

    /// A session and all its runs, oldest first (as they were worked).
    pub async fn load_session_export(
        &self,
        session: SessionId,
    ) -> Result<(Session, Vec<RunExport>)> {
        let info = self.session(session).await?;
        let mut ids = Vec::new();
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let listed = self.list_runs(Some(session), page).await?;
            ids.extend(listed.items.iter().map(|r| r.id));
            match listed.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids.into_iter().rev() {
            // A run with an unreadable row is left out and reported, as in a listing.
            match self.load_run_export(id).await {
                Ok(run) => runs.push(run),
                Err(StoreError::Unreadable(bad)) => self.report_unreadable(bad),
                Err(other) => return Err(other),
            }
        }
        Ok((info, runs))
    }
}

/// One run as a document in `format`.
pub fn export_run(run: &RunExport, format: ExportFormat) -> String {
    render(&Document::of_run(run), format)
}

/// A session's runs as one document in `format`.
pub fn export_session(session: &Session, runs: &[RunExport], format: ExportFormat) -> String {
    render(&Document::of_session(session, runs), format)
}

/// Any document (a class report, say) in `format`.
pub fn render(document: &Document, format: ExportFormat) -> String {
    match format {
        ExportFormat::Markdown => document.to_markdown(),
        ExportFormat::Html => html_page::page(document),
    }
}

pub(crate) use k2_render::escape_html;
