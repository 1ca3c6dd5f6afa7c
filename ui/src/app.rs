//! The app: the solve view and the state of the run on screen.

use k2_protocol::{RunRequest, RunView};
use leptos::prelude::*;

use crate::hints::HintLadder;
use crate::history::History;
use crate::session;
use crate::student::{CheckAnswer, RevealSolution};
use crate::transport::{self, Me, RunHandle};
use crate::views::{Candidates, FinalAnswer, PlanPanel, ProblemInput, StatusBar, Verdicts};

/// What the page shows of the current run.
#[derive(Clone, Copy)]
pub struct RunState {
    pub view: RwSignal<RunView>,
    pub running: RwSignal<bool>,
    /// A failure outside the run's own events (server unreachable, refused).
    pub failure: RwSignal<Option<String>>,
    /// Student mode: hints written for the student one at a time, the solution only when
    /// asked; the solver's plan is not shown.
    pub student: RwSignal<bool>,
    /// Student mode fixed by the lab administrator (the desktop app's system configuration).
    pub student_locked: RwSignal<bool>,
    /// The most hint rungs a student may open (the lab configuration's `hint_levels`).
    pub hint_cap: RwSignal<Option<u32>>,
    /// In student mode, whether the student asked to see the solution of this run.
    pub revealed: RwSignal<bool>,
    /// The decoding rate while the run streams.
    pub live: RwSignal<crate::render::LiveRate>,
    /// The history's id of the run on screen, once it is known (notes, attempts, export).
    pub stored: RwSignal<Option<i64>>,
    /// The events of the live run so far (review steps through them once it ends).
    pub log: StoredValue<Vec<k2_protocol::Event>, LocalStorage>,
    /// What people did with the kept run on screen (`crate::record`): the teacher's
    /// correction, the student's attempts and hints opened.
    pub record: RwSignal<Option<k2_protocol::StudentRecord>>,
    /// Who uses the page (`transport::me`); `None` until the server says, or from a server
    /// without roles, where the one token is the teacher's.
    pub me: RwSignal<Option<Me>>,
}

impl RunState {
    /// Whether candidates, verdicts and the answer may be shown.
    pub fn solution_visible(&self) -> bool {
        !self.student.get() || self.revealed.get()
    }

    /// Whether the page's token is a student's (the server refuses them the teacher's tools).
    pub fn is_student(&self) -> bool {
        self.me.with(|me| me.as_ref().is_some_and(Me::is_student))
    }

    /// The teacher's tools (notes, corrections, deleting runs): for the teacher, outside
    /// student mode.
    pub fn teacher_tools(&self) -> bool {
        !self.is_student() && !self.student.get()
    }

    /// Whether the teacher's test mode holds hints and solutions back from this student.
    pub fn held_for_test(&self) -> bool {
        self.me.with(|me| {
            me.as_ref()
                .is_some_and(|me| me.is_student() && me.test_mode)
        })
    }
}

/// Asks who the token belongs to and applies it: a student's page keeps student mode on when
/// the lab locked it. A server without roles (or one not reached) leaves the page as it is.
fn load_me(state: RunState, token: &str) {
    transport::me(token, move |result| match result {
        Ok(me) => {
            if me.is_student() && me.student_mode_locked {
                state.student.set(true);
                state.student_locked.set(true);
            }
            // The class's cap on hints (the server refuses more anyway).
            if me.hint_levels.is_some() {
                state.hint_cap.set(me.hint_levels);
            }
            state.me.set(Some(me));
        }
        Err(e) => {
            leptos::logging::log!("no roles on this server ({e}): the token is the teacher's")
        }
    });
}

/// The pages of the app: solving (with History and Review), and the teacher's class.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    Solve,
    Class,
}

#[component]
pub fn App() -> impl IntoView {
    let token = RwSignal::new(session::token().unwrap_or_default());
    let state = RunState {
        view: RwSignal::new(RunView::default()),
        running: RwSignal::new(false),
        failure: RwSignal::new(None),
        student: RwSignal::new(crate::student::remembered()),
        student_locked: RwSignal::new(false),
        hint_cap: RwSignal::new(None),
        revealed: RwSignal::new(false),
        live: RwSignal::new(Default::default()),
        stored: RwSignal::new(None),
        log: StoredValue::new_local(Vec::new()),
        record: RwSignal::new(None),
        me: RwSignal::new(None),
    };
    let page = RwSignal::new(Page::Solve);
    // Who the token is, once known; again whenever the token changes (typed on the page).
    Effect::new(move |_| {
        let token = token.get();
        if !token.is_empty() || transport::in_desktop_app() {
            load_me(state, &token);
        }
    });
    crate::models::apply_student_mode(state.student, state.student_locked, state.hint_cap);
    let problem = RwSignal::new(String::new());
    let settings = crate::run_settings::remembered();
    let session_title = RwSignal::new(session::remembered_session());
    let handle: StoredValue<Option<RunHandle>, LocalStorage> = StoredValue::new_local(None);

    let start = move || {
        let text = problem.get_untracked();
        if text.trim().is_empty() || state.running.get_untracked() {
            return;
        }
        let mut request = RunRequest::new(text);
        request.settings = settings.get_untracked();
        // A student's run ends with the hint ladder, and the server keeps its solution from
        // the student until asked.
        let student = state.student.get_untracked();
        request.settings.hints = student;
        request.settings.student = student;
        let title = session_title.get_untracked();
        request.session = Some(title.trim().to_owned()).filter(|t| !t.is_empty());
        session::remember_session(&title);
        state.view.set(RunView::default());
        state.stored.set(None);
        state.log.set_value(Vec::new());
        state.failure.set(None);
        state.revealed.set(false);
        state.running.set(true);
        session::remember_token(&token.get_untracked());
        // The teacher may have started or lifted a test since the page loaded.
        load_me(state, &token.get_untracked());
        let transport = transport::detect(token.get_untracked());
        let callbacks = transport::RunCallbacks {
            on_stored: Box::new(move |id| state.stored.set(Some(id))),
            on_event: Box::new(crate::render::batched_apply(
                state.view, state.live, state.log,
            )),
            on_end: Box::new(move |failure| {
                if failure.is_some() {
                    state.failure.set(failure);
                }
                state.running.set(false);
            }),
        };
        let run = transport.start_run(&request, callbacks);
        handle.set_value(Some(run));
    };
    let stop = move || {
        handle.update_value(|h| {
            if let Some(run) = h.as_mut() {
                run.stop();
            }
        });
        state.running.set(false);
        state.view.update(|v| v.cancelled = true);
    };

    // The class page is the teacher's, on a server with a class roster.
    let class_nav = move || {
        state
            .me
            .with(|me| me.as_ref().is_some_and(|m| !m.is_student() && m.class))
    };
    // A student's run from the class page: in the solve view with its Review.
    let open_from_class = move |run: i64| {
        page.set(Page::Solve);
        crate::history::open_stored(state, problem, token, run);
    };
    let sign_out = move |_| {
        session::sign_out();
        if let Some(window) = web_sys::window() {
            // A fresh page: nothing of the last person's runs stays on screen.
            let _ = window.location().reload();
        }
    };
    view! {
        <header class="topbar">
            <h1>"K2 Tutor"</h1>
            <Show when=class_nav>
                <nav class="pages">
                    <button id="nav-solve" class="link" class:current=move || page.get() == Page::Solve
                        on:click=move |_| page.set(Page::Solve)>"Solve"</button>
                    <button id="nav-class" class="link" class:current=move || page.get() == Page::Class
                        on:click=move |_| page.set(Page::Class)>"Class"</button>
                </nav>
            </Show>
            // The run on screen's stage and answer: the solve view's.
            <Show when=move || page.get() == Page::Solve>
                <StatusBar state=state />
            </Show>
            <crate::settings::Settings />
            <Show when=move || !transport::in_desktop_app() && !token.get().is_empty()>
                <span class="who">
                    {move || state.me.with(|me| me.as_ref().map(|m| m.name.clone()).unwrap_or_default())}
                    " "
                    <button id="sign-out" class="link" title="Forget this browser's token (shared computers)"
                        on:click=sign_out>"Sign out"</button>
                </span>
            </Show>
        </header>
        <main>
            <Show when=move || page.get() == Page::Class>
                <crate::class::ClassPage token=token on_open=open_from_class />
            </Show>
            // Hidden, not removed, while the class page shows: the run on screen and its
            // panels stay as they were.
            <div id="solve-page" hidden=move || page.get() != Page::Solve>
            <Show when=move || token.get().is_empty() && !transport::in_desktop_app()>
                <section class="notice">
                    <p>"This server needs its access token. Open the link "
                       <code>"k2 serve"</code>" printed, or paste the token here:"</p>
                    <input id="token" type="password" placeholder="token"
                        on:change=move |ev| token.set(event_target_value(&ev)) />
                </section>
            </Show>
            <Show when=move || state.held_for_test()>
                <p id="test-mode" class="notice">
                    "Your teacher is running a test: hints and solutions are off until it ends."
                </p>
            </Show>
            <ProblemInput problem=problem session=session_title settings=settings state=state
                on_start=start on_stop=stop />
            <crate::run_settings::RunSettingsPanel settings=settings />
            <Show when=move || state.failure.get().is_some()>
                <p class="error" role="alert">{move || state.failure.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || state.view.with(|v| v.error.is_some())>
                <p class="error" role="alert">
                    {move || state.view.with(|v| v.error.clone().unwrap_or_default())}
                </p>
            </Show>
            <PlanPanel state=state />
            <HintLadder state=state token=token cap=state.hint_cap />
            <RevealSolution state=state token=token />
            <Show when=move || state.solution_visible()>
                <Candidates state=state />
                <Verdicts state=state />
                <FinalAnswer state=state />
            </Show>
            <crate::record::CorrectionNotice state=state token=token />
            <CheckAnswer state=state token=token />
            <crate::work::CheckWork state=state token=token />
            <crate::review::Review state=state token=token />
            <History state=state problem=problem token=token />
            <crate::models::Models />
            </div>
        </main>
    }
}
