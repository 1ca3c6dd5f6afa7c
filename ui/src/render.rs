//! Rendering that keeps up with a fast stream.
//!
//! Two costs grow with a run: applying each event to the view and drawing, and rendering a
//! candidate's whole text to HTML after every delta. Events are therefore applied in batches,
//! once per animation frame, and text is rendered incrementally: paragraphs that can no longer
//! change (everything before the last blank line outside code and display math) are rendered
//! once and kept; only the open paragraph at the end is rendered again.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use k2_protocol::{Event, RunView};
use k2_render::markdown_to_html;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

/// The live decoding rate of a run: candidate text pieces (one per generated token, as the
/// engine streams them) over the run time they span.
#[derive(Clone, Copy, Default, PartialEq)]
pub struct LiveRate {
    pub pieces: u64,
    pub first_ms: u64,
    pub last_ms: u64,
}

impl LiveRate {
    fn count(&mut self, event: &Event) {
        if matches!(event.kind, k2_protocol::RunEvent::CandidateDelta { .. }) {
            if self.pieces == 0 {
                self.first_ms = event.elapsed_ms;
            }
            self.pieces += 1;
            self.last_ms = event.elapsed_ms;
        }
    }

    /// Tokens per second, once a second of decoding has been seen.
    pub fn per_second(&self) -> Option<f64> {
        let span = self.last_ms.saturating_sub(self.first_ms);
        (span >= 1000).then(|| self.pieces as f64 * 1000.0 / span as f64)
    }
}

/// Keeps every event in `log` (the run's record, which review steps through) and applies the
/// new ones to `view` at most once per animation frame, all at once, keeping `live` up to date.
/// The log is the queue: a frame applies what came after the last frame's end.
pub fn batched_apply(
    view: RwSignal<RunView>,
    live: RwSignal<LiveRate>,
    log: StoredValue<Vec<Event>, LocalStorage>,
) -> impl FnMut(Event) {
    live.set(LiveRate::default());
    let applied = Rc::new(Cell::new(0usize));
    let scheduled = Rc::new(Cell::new(false));
    move |event: Event| {
        log.update_value(|log| log.push(event));
        if scheduled.replace(true) {
            return;
        }
        let (applied, scheduled) = (applied.clone(), scheduled.clone());
        let flush = Closure::once_into_js(move || {
            scheduled.set(false);
            log.with_value(|log| {
                // A log cleared by a newer run since: nothing of this one is left to apply.
                let new = &log[applied.get().min(log.len())..];
                live.update(|rate| new.iter().for_each(|e| rate.count(e)));
                view.update(|v| new.iter().for_each(|e| v.apply(e)));
                applied.set(log.len());
            });
        });
        let window = web_sys::window().expect("a window");
        let _ = window.request_animation_frame(flush.unchecked_ref());
    }
}

/// Appends `blocks[from..]` to `parent`: first filling its last chunk up to
/// [`BLOCKS_PER_CHUNK`] (block `i` belongs to chunk `i / BLOCKS_PER_CHUNK`), then in new
/// chunks, one DOM insertion per chunk.
fn append_in_chunks(parent: &web_sys::Element, blocks: &[Arc<str>], from: usize) {
    let mut start = from;
    while start < blocks.len() {
        let end = ((start / BLOCKS_PER_CHUNK + 1) * BLOCKS_PER_CHUNK).min(blocks.len());
        let html: String = blocks[start..end]
            .iter()
            .map(|block| format!("<div class=\"block\">{block}</div>"))
            .collect();
        if start % BLOCKS_PER_CHUNK == 0 {
            let _ = parent.insert_adjacent_html("beforeend", "<div class=\"chunk\"></div>");
        }
        if let Some(chunk) = parent.last_element_child() {
            let _ = chunk.insert_adjacent_html("beforeend", &html);
        }
        start = end;
    }
}

/// A growing text rendered as blocks that never change again plus the open block at the end.
/// The page adds each settled block once and only ever replaces the tail's HTML, so the
/// browser's work per frame does not grow with the text.
#[derive(Clone, Default)]
pub struct Rendered {
    pub settled: Vec<Arc<str>>,
    pub tail: String,
}

impl PartialEq for Rendered {
    // Settled blocks never change, so their count identifies them (no O(n) comparison).
    fn eq(&self, other: &Self) -> bool {
        self.settled.len() == other.settled.len() && self.tail == other.tail
    }
}

/// Markdown rendering of a growing text that renders each settled block once.
#[derive(Default)]
pub struct IncrementalMarkdown {
    /// Bytes of the text already rendered into `settled`.
    settled_len: usize,
    /// The edges of the settled text, to notice a different text (a new run, a replay).
    settled_edges: (String, String),
    settled: Vec<Arc<str>>,
}

/// The first and last 64 bytes (on character boundaries) of `text[..len]`.
fn edges(text: &str, len: usize) -> (String, String) {
    let head = (0..=len.min(64))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let tail = (len.saturating_sub(64)..=len)
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(len);
    (text[..head].to_owned(), text[tail..len].to_owned())
}

impl IncrementalMarkdown {
    pub fn render(&mut self, text: &str) -> Rendered {
        let same_text = text.len() >= self.settled_len
            && text.is_char_boundary(self.settled_len)
            && edges(text, self.settled_len) == self.settled_edges;
        if !same_text {
            *self = Self::default();
        }
        // Everything before `settled_len` is balanced, so the scan starts there.
        let boundary = self.settled_len + settled_boundary(&text[self.settled_len..]);
        if boundary > self.settled_len {
            let html = markdown_to_html(&text[self.settled_len..boundary]);
            self.settled.push(html.into());
            self.settled_len = boundary;
            self.settled_edges = edges(text, boundary);
        }
        Rendered {
            settled: self.settled.clone(),
            tail: markdown_to_html(&text[self.settled_len..]),
        }
    }
}

/// The end of the last blank line after which no block can still change: outside code fences
/// and display math (an even number of each before it).
fn settled_boundary(text: &str) -> usize {
    let mut boundary = 0;
    let mut fences = 0usize;
    let mut display = 0usize;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fences += 1;
        }
        display +=
            line.matches("$$").count() + line.matches("\\[").count() + line.matches("\\]").count();
        offset += line.len();
        let open = fences % 2 == 1 || display % 2 == 1;
        if trimmed.is_empty() && line.ends_with('\n') && !open && offset < text.len() {
            boundary = offset;
        }
    }
    boundary
}

/// A memo of the text `pick` finds in the run's view, rendered incrementally (one renderer
/// per memo; the text is read in place, never copied).
pub fn incremental(
    view: RwSignal<RunView>,
    pick: impl Fn(&RunView) -> &str + Send + Sync + 'static,
) -> Memo<Rendered> {
    let renderer = StoredValue::new_local(IncrementalMarkdown::default());
    Memo::new(move |_| {
        view.with(|v| renderer.try_update_value(|r| r.render(pick(v))))
            .unwrap_or_default()
    })
}

/// Settled blocks per chunk: the unit the browser may skip when off screen.
const BLOCKS_PER_CHUNK: usize = 64;

/// Shows a [`Rendered`] text: settled blocks are appended to the page once (straight into the
/// DOM, no diffing of what is already there), the tail is replaced.
///
/// Settled blocks go into chunks of [`BLOCKS_PER_CHUNK`], and the chunks carry
/// `content-visibility: auto` (style.css), not each block: the browser checks every such
/// element against the viewport on every frame, and a reasoning trace of thousands of
/// paragraphs made that check (with hit testing) a large part of each frame.
#[component]
pub fn Markdown(rendered: Memo<Rendered>, #[prop(optional)] class: &'static str) -> impl IntoView {
    let settled = NodeRef::<leptos::html::Div>::new();
    // The blocks this element holds: the first of `Rendered::settled`, identified by the
    // first block (a new text starts over).
    let shown: StoredValue<(usize, Option<Arc<str>>), LocalStorage> =
        StoredValue::new_local((0, None));
    Effect::new(move |_| {
        rendered.with(|r| {
            let Some(element) = settled.get() else {
                return;
            };
            let (count, first) = shown.get_value();
            let same = count <= r.settled.len()
                && (count == 0
                    || first.as_ref().map(|f| f.as_ptr()) == r.settled.first().map(|f| f.as_ptr()));
            let from = if same {
                count
            } else {
                element.set_inner_html("");
                0
            };
            append_in_chunks(&element, &r.settled, from);
            shown.set_value((r.settled.len(), r.settled.first().cloned()));
        })
    });
    view! {
        <div class=format!("markdown {class}")>
            <div class="settled" node_ref=settled></div>
            <div class="block" inner_html=move || rendered.with(|r| r.tail.clone())></div>
        </div>
    }
}
