//! How the UI reaches the engine. One small interface, two implementations: HTTP + SSE to
//! `k2 serve` in a browser (here), Tauri commands and channels inside the desktop app.
//! Components only see [`Transport`]: start a run, get its events, stop it.

use k2_protocol::{Event, HistoryRequest, RunRequest};
use wasm_bindgen::prelude::*;

/// What the UI asks of a backend.
pub trait Transport {
    /// Starts `request`; `on_stored` gets the id the history keeps it under (if it does),
    /// `on_event` every event in order, `on_end` is called once at the end (`Some(message)`
    /// when the connection failed). The handle stops the run when asked or dropped.
    fn start_run(&self, request: &RunRequest, callbacks: RunCallbacks) -> RunHandle;
}

/// What a run reports to the page.
pub struct RunCallbacks {
    pub on_stored: Box<dyn FnMut(i64)>,
    pub on_event: Box<dyn FnMut(Event)>,
    pub on_end: Box<dyn FnMut(Option<String>)>,
}

/// A run in flight. Dropping it stops the run.
pub struct RunHandle {
    /// Stops the run (a JavaScript function the transport returned).
    stopper: Option<js_sys::Function>,
    // The callbacks live as long as the run can call them.
    _callbacks: Vec<Box<dyn std::any::Any>>,
}

impl RunHandle {
    /// A run stopped by calling `stopper`, whose callbacks must live as long as it.
    fn new(stopper: js_sys::Function, callbacks: JsCallbacks) -> Self {
        RunHandle {
            stopper: Some(stopper),
            _callbacks: vec![
                Box::new(callbacks.on_stored),
                Box::new(callbacks.on_data),
                Box::new(callbacks.on_end),
            ],
        }
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stopper.take() {
            let _ = stop.call0(&JsValue::NULL);
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[wasm_bindgen(inline_js = r#"
// POST a run and read its server-sent events (EventSource cannot POST or send headers).
export function k2_stream_run(url, token, body, onStored, onData, onEnd) {
  const controller = new AbortController();
  (async () => {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
        body,
        signal: controller.signal,
      });
      if (!response.ok) {
        const text = await response.text();
        let message = text;
        try { message = JSON.parse(text).error.message; } catch (_) {}
        onEnd(`The server refused the run (HTTP ${response.status}): ${message}`);
        return;
      }
      const stored = response.headers.get("x-k2-run");
      if (stored) onStored(Number(stored));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (data) onData(data);
        }
      }
      onEnd(undefined);
    } catch (error) {
      onEnd(controller.signal.aborted ? undefined
        : `Lost the connection to the server (${error}). Is k2 serve still running?`);
    }
  })();
  return () => controller.abort();
}

// A call to `k2 serve`'s API (`body`: JSON text or undefined), answering its text or an error
// in words.
export function k2_http(method, url, token, body, onDone) {
  const headers = { "Authorization": "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  fetch(url, { method, headers, body })
    .then(async (response) => {
      const text = await response.text();
      if (response.ok) onDone(text, undefined);
      else {
        let message = text;
        try { message = JSON.parse(text).error.message; } catch (_) {}
        onDone(undefined, `HTTP ${response.status}: ${message}`);
      }
    })
    .catch((error) => onDone(undefined, `cannot reach the server (${error})`));
}

// Inside the desktop app: Tauri's command and channel.
export function k2_tauri_invoke(command, args, onDone) {
  window.__TAURI__.core.invoke(command, JSON.parse(args))
    .then((value) => onDone(JSON.stringify(value), undefined))
    .catch((error) => onDone(undefined, String(error)));
}
// A command that reports progress on a channel (`onProgress` gets each message's JSON).
export function k2_tauri_invoke_progress(command, args, onProgress, onDone) {
  const core = window.__TAURI__.core;
  const channel = new core.Channel();
  channel.onmessage = (message) => onProgress(JSON.stringify(message));
  core.invoke(command, { ...JSON.parse(args), onProgress: channel })
    .then((value) => onDone(JSON.stringify(value), undefined))
    .catch((error) => onDone(undefined, String(error)));
}
export function k2_tauri_available() {
  return !!(window.__TAURI__ && window.__TAURI__.core);
}
export function k2_tauri_run(body, onStored, onData, onEnd) {
  const core = window.__TAURI__.core;
  const channel = new core.Channel();
  let run = null, stopAsked = false, ended = false;
  const end = (error) => { if (!ended) { ended = true; onEnd(error); } };
  // `onData` answers whether the event ends the run (`RunEvent::is_terminal`, in Rust).
  channel.onmessage = (event) => { if (onData(JSON.stringify(event))) end(undefined); };
  core.invoke("start_run", { request: JSON.parse(body), onEvent: channel })
    .then((started) => {
      run = started.id;
      if (started.stored !== null) onStored(started.stored);
      if (stopAsked) core.invoke("cancel_run", { run });
    })
    .catch((error) => end(`The app could not start the run: ${error}`));
  return () => {
    stopAsked = true;
    if (run !== null) core.invoke("cancel_run", { run });
  };
}

// Saves `text` as a file the browser downloads.
export function k2_download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
"#)]
extern "C" {
    fn k2_stream_run(
        url: &str,
        token: &str,
        body: &str,
        on_stored: &Closure<dyn FnMut(f64)>,
        on_data: &Closure<dyn FnMut(String) -> bool>,
        on_end: &Closure<dyn FnMut(Option<String>)>,
    ) -> js_sys::Function;
    fn k2_tauri_available() -> bool;
    fn k2_http(method: &str, url: &str, token: &str, body: Option<String>, on_done: JsValue);
    fn k2_tauri_invoke(command: &str, args: &str, on_done: JsValue);
    fn k2_tauri_invoke_progress(
        command: &str,
        args: &str,
        on_progress: &Closure<dyn FnMut(String)>,
        on_done: JsValue,
    );
    fn k2_tauri_run(
        body: &str,
        on_stored: &Closure<dyn FnMut(f64)>,
        on_data: &Closure<dyn FnMut(String) -> bool>,
        on_end: &Closure<dyn FnMut(Option<String>)>,
    ) -> js_sys::Function;
    fn k2_download(name: &str, media_type: &str, text: &str);
}

/// The transport of where the app runs: the desktop window's, else `k2 serve`'s.
pub fn detect(token: String) -> Box<dyn Transport> {
    if k2_tauri_available() {
        Box::new(TauriTransport)
    } else {
        Box::new(HttpTransport {
            base: crate::session::server_base(),
            token,
        })
    }
}

/// Whether the app runs in the desktop window (no server token needed there).
pub fn in_desktop_app() -> bool {
    k2_tauri_available()
}

/// Calls a desktop app command with JSON `args`; `done` gets its JSON result or its error.
pub fn desktop_command(
    command: &str,
    args: serde_json::Value,
    done: impl FnOnce(Result<String, String>) + 'static,
) {
    k2_tauri_invoke(command, &args.to_string(), json_callback(done));
}

/// A desktop app command that reports progress: `progress` gets each report's JSON until
/// `done` gets the result.
pub fn desktop_command_with_progress(
    command: &str,
    args: serde_json::Value,
    progress: impl FnMut(String) + 'static,
    done: impl FnOnce(Result<String, String>) + 'static,
) {
    let progress = Closure::<dyn FnMut(String)>::new(progress);
    let on_progress = std::rc::Rc::new(progress);
    let keep = on_progress.clone();
    k2_tauri_invoke_progress(
        command,
        &args.to_string(),
        &on_progress,
        // The progress callback lives until the command is done.
        json_callback(move |result| {
            drop(keep);
            done(result)
        }),
    );
}

fn json_callback(done: impl FnOnce(Result<String, String>) + 'static) -> JsValue {
    Closure::once_into_js(move |value: Option<String>, error: Option<String>| {
        done(match (value, error) {
            (Some(value), None) => Ok(value),
            (_, error) => Err(error.unwrap_or_else(|| "no answer".into())),
        })
    })
}

/// Any history operation, to wherever the app runs: the desktop app's `history` command, or
/// `k2 serve`'s `POST /v1/k2/history`. `done` gets the reply's JSON (each [`HistoryRequest`]
/// variant says what it answers) or an error in words.
pub fn history(
    token: &str,
    request: &HistoryRequest,
    done: impl FnOnce(Result<String, String>) + 'static,
) {
    if in_desktop_app() {
        desktop_command("history", serde_json::json!({ "request": request }), done);
    } else {
        let url = format!("{}/v1/k2/history", crate::session::server_base());
        let body = serde_json::to_string(request).unwrap_or_default();
        k2_http("POST", &url, token, Some(body), json_callback(done));
    }
}

/// Who uses the page, as `k2 serve` knows them from the token (`GET /v1/k2/me`). In the
/// desktop app there is no server: the person at the machine is the teacher.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Me {
    pub role: Role,
    pub name: String,
    /// The class's student mode is fixed on by the lab (`k2 serve --student-mode locked`).
    pub student_mode_locked: bool,
    /// The teacher's test mode: no hints and no solutions for students until it is lifted.
    pub test_mode: bool,
    /// The server has a class roster (`k2 serve --roster`): the teacher has a class page.
    #[serde(default)]
    pub class: bool,
    /// The most hint rungs this student may open (`k2 serve --hint-levels`).
    #[serde(default)]
    pub hint_levels: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Teacher,
    Student,
}

impl Me {
    pub fn is_student(&self) -> bool {
        self.role == Role::Student
    }
}

/// Who the page's token belongs to: `k2 serve`'s answer in a browser, the teacher without a
/// call in the desktop app.
pub fn me(token: &str, done: impl FnOnce(Result<Me, String>) + 'static) {
    if in_desktop_app() {
        done(Ok(Me {
            role: Role::Teacher,
            name: "teacher".into(),
            student_mode_locked: false,
            test_mode: false,
            class: false,
            hint_levels: None,
        }));
        return;
    }
    let url = format!("{}/v1/k2/me", crate::session::server_base());
    k2_http(
        "GET",
        &url,
        token,
        None,
        json_callback(move |result| {
            done(result.and_then(|json| {
                serde_json::from_str(&json).map_err(|e| format!("unreadable answer: {e}"))
            }))
        }),
    );
}

/// Saves `text` as a file the browser downloads.
pub fn download(name: &str, media_type: &str, text: &str) {
    k2_download(name, media_type, text);
}

/// A run's callbacks as JavaScript sees them.
struct JsCallbacks {
    on_stored: Closure<dyn FnMut(f64)>,
    /// Gets an event's JSON; answers whether the event ends the run.
    on_data: Closure<dyn FnMut(String) -> bool>,
    on_end: Closure<dyn FnMut(Option<String>)>,
}

/// The JavaScript callbacks of a run: the stored id, each event's JSON, then the end.
fn js_callbacks(callbacks: RunCallbacks) -> JsCallbacks {
    let RunCallbacks {
        mut on_stored,
        mut on_event,
        mut on_end,
    } = callbacks;
    let on_stored = Closure::<dyn FnMut(f64)>::new(move |id: f64| on_stored(id as i64));
    let on_data = Closure::<dyn FnMut(String) -> bool>::new(move |data: String| {
        match serde_json::from_str::<Event>(&data) {
            Ok(event) => {
                let ends = event.kind.is_terminal();
                on_event(event);
                ends
            }
            Err(e) => {
                web_sys::console::warn_1(&format!("unreadable event: {e}").into());
                false
            }
        }
    });
    let on_end =
        Closure::<dyn FnMut(Option<String>)>::new(move |error: Option<String>| on_end(error));
    JsCallbacks {
        on_stored,
        on_data,
        on_end,
    }
}

/// The desktop app's engine, through Tauri's `start_run`/`cancel_run` commands.
pub struct TauriTransport;

impl Transport for TauriTransport {
    fn start_run(&self, request: &RunRequest, callbacks: RunCallbacks) -> RunHandle {
        let body = serde_json::to_string(request).unwrap_or_default();
        let js = js_callbacks(callbacks);
        let stopper = k2_tauri_run(&body, &js.on_stored, &js.on_data, &js.on_end);
        RunHandle::new(stopper, js)
    }
}

/// `k2 serve`'s `POST /v1/k2/runs`, from the page it served (same origin).
pub struct HttpTransport {
    pub base: String,
    pub token: String,
}

impl Transport for HttpTransport {
    fn start_run(&self, request: &RunRequest, callbacks: RunCallbacks) -> RunHandle {
        let body = serde_json::to_string(request).unwrap_or_default();
        let js = js_callbacks(callbacks);
        let url = format!("{}/v1/k2/runs", self.base);
        let stopper = k2_stream_run(
            &url,
            &self.token,
            &body,
            &js.on_stored,
            &js.on_data,
            &js.on_end,
        );
        RunHandle::new(stopper, js)
    }
}
