//! How the UI reaches the engine. One small interface, two implementations: HTTP + SSE to
//! `k2 serve` in a browser (here), Tauri commands and channels inside the desktop app.
//! Components only see [`Transport`]: start a run, get its events, stop it.

use k2_protocol::{Event, RunRequest};
use wasm_bindgen::prelude::*;

/// What the UI asks of a backend.
pub trait Transport {
    /// Starts `request`; `on_event` gets every event in order, `on_end` once at the end
    /// (`Some(message)` when the connection failed). The handle stops the run when asked or
    /// dropped.
    fn start_run(
        &self,
        request: &RunRequest,
        on_event: Box<dyn FnMut(Event)>,
        on_end: Box<dyn FnMut(Option<String>)>,
    ) -> RunHandle;
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
    fn new(
        stopper: js_sys::Function,
        on_data: Closure<dyn FnMut(String)>,
        on_end: Closure<dyn FnMut(Option<String>)>,
    ) -> Self {
        RunHandle {
            stopper: Some(stopper),
            _callbacks: vec![Box::new(on_data), Box::new(on_end)],
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
export function k2_stream_run(url, token, body, onData, onEnd) {
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

// A GET of `k2 serve`'s API, answering its JSON text or an error in words.
export function k2_http(method, url, token, onDone) {
  fetch(url, { method, headers: { "Authorization": "Bearer " + token } })
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
export function k2_tauri_available() {
  return !!(window.__TAURI__ && window.__TAURI__.core);
}
export function k2_tauri_run(body, onData, onEnd) {
  const core = window.__TAURI__.core;
  const channel = new core.Channel();
  let run = null, stopAsked = false, ended = false;
  const end = (error) => { if (!ended) { ended = true; onEnd(error); } };
  channel.onmessage = (event) => {
    onData(JSON.stringify(event));
    if (["stats", "error", "cancelled"].includes(event.type)) end(undefined);
  };
  core.invoke("start_run", { request: JSON.parse(body), onEvent: channel })
    .then((id) => { run = id; if (stopAsked) core.invoke("cancel_run", { run }); })
    .catch((error) => end(`The app could not start the run: ${error}`));
  return () => {
    stopAsked = true;
    if (run !== null) core.invoke("cancel_run", { run });
  };
}
"#)]
extern "C" {
    fn k2_stream_run(
        url: &str,
        token: &str,
        body: &str,
        on_data: &Closure<dyn FnMut(String)>,
        on_end: &Closure<dyn FnMut(Option<String>)>,
    ) -> js_sys::Function;
    fn k2_tauri_available() -> bool;
    fn k2_http(method: &str, url: &str, token: &str, on_done: JsValue);
    fn k2_tauri_invoke(command: &str, args: &str, on_done: JsValue);
    fn k2_tauri_run(
        body: &str,
        on_data: &Closure<dyn FnMut(String)>,
        on_end: &Closure<dyn FnMut(Option<String>)>,
    ) -> js_sys::Function;
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

fn json_callback(done: impl FnOnce(Result<String, String>) + 'static) -> JsValue {
    Closure::once_into_js(move |value: Option<String>, error: Option<String>| {
        done(match (value, error) {
            (Some(value), None) => Ok(value),
            (_, error) => Err(error.unwrap_or_else(|| "no answer".into())),
        })
    })
}

/// A history call to wherever the app runs: the desktop app's `command` with `args`, or
/// `method` on `k2 serve`'s `path`. `done` gets the JSON answer or an error in words.
fn history_call(
    token: &str,
    (command, args): (&str, serde_json::Value),
    (method, path): (&str, &str),
    done: impl FnOnce(Result<String, String>) + 'static,
) {
    if in_desktop_app() {
        desktop_command(command, args, done);
    } else {
        let url = format!("{}{path}", crate::session::server_base());
        k2_http(method, &url, token, json_callback(done));
    }
}

/// The stored runs, newest first (JSON of the store's run summaries).
pub fn list_runs(token: &str, done: impl FnOnce(Result<String, String>) + 'static) {
    let desktop = ("list_runs", serde_json::json!({}));
    history_call(token, desktop, ("GET", "/v1/k2/runs"), done);
}

/// Deletes a stored run.
pub fn delete_run(token: &str, run: i64, done: impl FnOnce(Result<String, String>) + 'static) {
    let desktop = ("delete_run", serde_json::json!({ "run": run }));
    history_call(
        token,
        desktop,
        ("DELETE", &format!("/v1/k2/runs/{run}")),
        done,
    );
}

/// A stored run's events (JSON), to replay it.
pub fn run_events(token: &str, run: i64, done: impl FnOnce(Result<String, String>) + 'static) {
    let desktop = ("run_events", serde_json::json!({ "run": run }));
    let path = format!("/v1/k2/runs/{run}/events");
    history_call(token, desktop, ("GET", &path), done);
}

/// The JavaScript callbacks of a run: each event's JSON, then the end.
fn callbacks(
    mut on_event: Box<dyn FnMut(Event)>,
    mut on_end: Box<dyn FnMut(Option<String>)>,
) -> (
    Closure<dyn FnMut(String)>,
    Closure<dyn FnMut(Option<String>)>,
) {
    let on_data =
        Closure::<dyn FnMut(String)>::new(move |data: String| {
            match serde_json::from_str::<Event>(&data) {
                Ok(event) => on_event(event),
                Err(e) => web_sys::console::warn_1(&format!("unreadable event: {e}").into()),
            }
        });
    let on_end =
        Closure::<dyn FnMut(Option<String>)>::new(move |error: Option<String>| on_end(error));
    (on_data, on_end)
}

/// The desktop app's engine, through Tauri's `start_run`/`cancel_run` commands.
pub struct TauriTransport;

impl Transport for TauriTransport {
    fn start_run(
        &self,
        request: &RunRequest,
        on_event: Box<dyn FnMut(Event)>,
        on_end: Box<dyn FnMut(Option<String>)>,
    ) -> RunHandle {
        let body = serde_json::to_string(request).unwrap_or_default();
        let (on_data, on_end) = callbacks(on_event, on_end);
        let stopper = k2_tauri_run(&body, &on_data, &on_end);
        RunHandle::new(stopper, on_data, on_end)
    }
}

/// `k2 serve`'s `POST /v1/k2/runs`, from the page it served (same origin).
pub struct HttpTransport {
    pub base: String,
    pub token: String,
}

impl Transport for HttpTransport {
    fn start_run(
        &self,
        request: &RunRequest,
        on_event: Box<dyn FnMut(Event)>,
        on_end: Box<dyn FnMut(Option<String>)>,
    ) -> RunHandle {
        let body = serde_json::to_string(request).unwrap_or_default();
        let (on_data, on_end) = callbacks(on_event, on_end);
        let url = format!("{}/v1/k2/runs", self.base);
        let stopper = k2_stream_run(&url, &self.token, &body, &on_data, &on_end);
        RunHandle::new(stopper, on_data, on_end)
    }
}
