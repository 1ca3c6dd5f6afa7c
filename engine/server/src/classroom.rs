//! A class on the server (`k2 serve --roster FILE`, issue 29): students by token, student mode
//! enforced here rather than by the page, the class's test mode, and the routes only a class
//! has (`/v1/k2/me`, reveal, the teacher's class view and report).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use k2_protocol::disclosure::{student_event, Disclosed};
use k2_protocol::{ClassView, Event};
use k2_store::{RunId, Store, StudentId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::history::{dispatch, download};
use crate::roster::{LiveRoster, Roster};
use crate::state::AppState;
use k2_history::{HistoryReply, HistoryRequest};

/// How a class is run, from `k2 serve`'s options.
#[derive(Debug, Clone, Copy)]
pub struct ClassPolicy {
    /// Every student run is a student-mode run, whatever the request says (the lab's lock).
    pub lock_student_mode: bool,
    /// Students may use `/v1/chat/completions`, which answers whatever is asked, solutions
    /// included: off unless the teacher wants it.
    pub student_chat: bool,
    /// The most rungs of a hint ladder a student may open (the lab's `hint_levels`); `None`:
    /// all of them.
    pub hint_levels: Option<u32>,
    /// The most candidates one student's run may ask for, so one student cannot take the
    /// whole batch.
    pub student_candidates: usize,
}

pub struct Classroom {
    roster: LiveRoster,
    store: Store,
    pub policy: ClassPolicy,
    /// Students' ids by name, so a request costs no database round trip.
    ids: Mutex<HashMap<Arc<str>, StudentId>>,
    /// The class's test mode as last set (kept in the store; read here by live streams, which
    /// run on their own threads).
    test_mode: AtomicBool,
    /// Student-mode runs being streamed to their student now.
    live: Mutex<HashMap<RunId, Arc<Gate>>>,
}

impl Classroom {
    /// Opens the roster, with every student on it filed in the store.
    pub async fn open(
        roster: LiveRoster,
        store: Store,
        policy: ClassPolicy,
    ) -> Result<Classroom, String> {
        let class = Classroom {
            test_mode: AtomicBool::new(store.test_mode().await.map_err(|e| e.to_string())?),
            roster,
            store,
            policy,
            ids: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
        };
        class.file_roster().await.map_err(|e| e.to_string())?;
        Ok(class)
    }

    /// Files every student on the roster in the store, so the class view and report list
    /// students who have not used their token yet.
    pub async fn file_roster(&self) -> Result<(), k2_store::StoreError> {
        for name in self.roster.current().names() {
            self.store.student_named(name).await?;
        }
        Ok(())
    }

    pub fn roster(&self) -> Arc<Roster> {
        self.roster.current()
    }

    /// The student whose token this is, if any.
    pub async fn student_with(&self, token: &str) -> Result<Option<Identity>, ApiError> {
        let Some(name) = self.roster.current().student_with(token) else {
            return Ok(None);
        };
        let known = lock(&self.ids).get(&name).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.store.student_named(&name).await.map_err(|e| {
                    ApiError::unavailable(format!("the class's records are unavailable: {e}"))
                })?;
                lock(&self.ids).insert(name.clone(), id);
                id
            }
        };
        Ok(Some(Identity::Student { id, name }))
    }

    pub fn test_mode(&self) -> bool {
        self.test_mode.load(Ordering::SeqCst)
    }

    /// Whether a student's run must be a student-mode one.
    pub fn forces_student_mode(&self) -> bool {
        self.policy.lock_student_mode || self.test_mode()
    }

    /// Starts gating a student-mode run's live stream.
    pub fn open_gate(&self, run: RunId) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        lock(&self.live).insert(run, gate.clone());
        gate
    }

    pub fn close_gate(&self, run: RunId) {
        lock(&self.live).remove(&run);
    }

    fn gate(&self, run: RunId) -> Option<Arc<Gate>> {
        lock(&self.live).get(&run).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A student-mode run as it streams to its student: every event is kept whole here and sent
/// as [`student_event`] allows, until the student asks for the solution; then the whole of
/// what was held back is answered to that request and the rest streams whole. One lock
/// orders both, so no event is missed or sent twice.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    revealed: bool,
    seen: Vec<Event>,
}

impl Gate {
    /// What to send of `event` now.
    pub fn pass(&self, event: &Event, hints_allowed: bool) -> Option<Event> {
        let mut state = lock(&self.state);
        state.seen.push(event.clone());
        if state.revealed {
            return Some(event.clone());
        }
        student_event(
            event,
            Disclosed {
                hints_opened: &[],
                hints_allowed,
            },
        )
    }

    /// Opens the gate: answers every event so far, whole.
    fn reveal(&self) -> Vec<Event> {
        let mut state = lock(&self.state);
        state.revealed = true;
        state.seen.clone()
    }
}

/// `GET /v1/k2/me`: who the token is and what the class allows them (the UI shows or hides
/// its tools by it; the server enforces them anyway).
pub async fn me(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Json<Value> {
    let class = state.class.as_ref();
    let name = match &identity {
        Identity::Teacher => state.teacher_name.to_string(),
        Identity::Student { name, .. } => name.to_string(),
    };
    Json(json!({
        "role": identity.role(),
        "name": name,
        "student_mode_locked": !identity.is_teacher()
            && class.is_some_and(|c| c.forces_student_mode()),
        "test_mode": class.is_some_and(|c| c.test_mode()),
        "hint_levels": class.and_then(|c| c.policy.hint_levels).filter(|_| !identity.is_teacher()),
        "class": class.is_some(),
    }))
}

/// Refuses what the class's policy keeps from a student before the history is asked.
pub(crate) fn check_policy(
    state: &AppState,
    identity: &Identity,
    request: &HistoryRequest,
) -> Result<(), ApiError> {
    let (Some(class), false) = (&state.class, identity.is_teacher()) else {
        return Ok(());
    };
    if let (HistoryRequest::OpenHint { level, .. }, Some(most)) =
        (request, class.policy.hint_levels)
    {
        if *level > most {
            return Err(ApiError::forbidden(format!(
                "your teacher allows {most} hint(s) per problem"
            )));
        }
    }
    Ok(())
}

/// What a history operation's answer must bring to the class's live state, noted before the
/// operation is handed over (so the request need not be kept).
pub(crate) enum FollowUp {
    /// A student's reveal: their run's live gate opens, and its answer carries everything
    /// streamed so far.
    Reveal(RunId),
    /// Live streams learn the class's test mode.
    TestMode(bool),
    None,
}

impl FollowUp {
    pub(crate) fn of(identity: &Identity, request: &HistoryRequest) -> FollowUp {
        match request {
            HistoryRequest::Reveal { run } if !identity.is_teacher() => FollowUp::Reveal(*run),
            HistoryRequest::SetTestMode { on } => FollowUp::TestMode(*on),
            _ => FollowUp::None,
        }
    }
}

/// After a history operation: the follow-up noted before it, and a class view marks the
/// students no longer on the roster.
pub(crate) fn after_dispatch(
    state: &AppState,
    follow_up: FollowUp,
    reply: HistoryReply,
) -> HistoryReply {
    let Some(class) = &state.class else {
        return reply;
    };
    match (follow_up, reply) {
        (FollowUp::Reveal(run), reply) => match class.gate(run) {
            Some(gate) => HistoryReply::Events(gate.reveal()),
            None => reply,
        },
        (FollowUp::TestMode(on), HistoryReply::Class(view)) => {
            class.test_mode.store(on, Ordering::SeqCst);
            HistoryReply::Class(mark_removed(class, view))
        }
        (_, HistoryReply::Class(view)) => HistoryReply::Class(mark_removed(class, view)),
        (_, reply) => reply,
    }
}

fn mark_removed(class: &Classroom, mut view: ClassView) -> ClassView {
    let roster = class.roster();
    for student in &mut view.students {
        student.removed = !roster.contains(&student.name);
    }
    view
}

async fn json_of(
    state: &AppState,
    identity: &Identity,
    request: HistoryRequest,
) -> Result<Json<HistoryReply>, ApiError> {
    Ok(Json(dispatch(state, identity, request).await?))
}

/// `POST /v1/k2/runs/{id}/reveal`: the student asks for the solution; answers the events whole.
pub async fn reveal(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
) -> Result<Json<HistoryReply>, ApiError> {
    json_of(&state, &identity, HistoryRequest::Reveal { run }).await
}

#[derive(Deserialize)]
pub struct SessionQuery {
    session: Option<String>,
    #[serde(default = "html")]
    format: String,
}

fn html() -> String {
    "html".into()
}

/// `GET /v1/k2/class[?session=…]`
pub async fn class(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Query(query): Query<SessionQuery>,
) -> Result<Json<HistoryReply>, ApiError> {
    let session = query.session.filter(|s| !s.is_empty());
    json_of(&state, &identity, HistoryRequest::Class { session }).await
}

/// `GET /v1/k2/class/report[?session=…&format=html|markdown]`: a file to save.
pub async fn report(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Query(query): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    let request = HistoryRequest::ClassReport {
        session: query.session.filter(|s| !s.is_empty()),
        format: query.format,
    };
    download(&state, &identity, request).await
}

#[derive(Deserialize)]
pub struct TestModeBody {
    on: bool,
}

/// `PUT /v1/k2/class/test-mode` with `{on}`.
pub async fn set_test_mode(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Json(body): Json<TestModeBody>,
) -> Result<Json<HistoryReply>, ApiError> {
    json_of(
        &state,
        &identity,
        HistoryRequest::SetTestMode { on: body.on },
    )
    .await
}
