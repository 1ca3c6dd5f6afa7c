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

/// A run in flight. Dropping it stops the run (the server sees the client go away).
pub struct RunHandle {
    controller: Option<web_sys::AbortController>,
    // The callbacks live as long as the run can call them.
    _callbacks: Vec<Box<dyn std::any::Any>>,
}

impl RunHandle {
    pub fn stop(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
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
  return controller;
}
"#)]
extern "C" {
    fn k2_stream_run(
        url: &str,
        token: &str,
        body: &str,
        on_data: &Closure<dyn FnMut(String)>,
        on_end: &Closure<dyn FnMut(Option<String>)>,
    ) -> web_sys::AbortController;
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
        mut on_event: Box<dyn FnMut(Event)>,
        mut on_end: Box<dyn FnMut(Option<String>)>,
    ) -> RunHandle {
        let body = serde_json::to_string(request).unwrap_or_default();
        let on_data = Closure::<dyn FnMut(String)>::new(move |data: String| {
            match serde_json::from_str::<Event>(&data) {
                Ok(event) => on_event(event),
                Err(e) => web_sys::console::warn_1(&format!("unreadable event: {e}").into()),
            }
        });
        let on_end_js =
            Closure::<dyn FnMut(Option<String>)>::new(move |error: Option<String>| on_end(error));
        let url = format!("{}/v1/k2/runs", self.base);
        let controller = k2_stream_run(&url, &self.token, &body, &on_data, &on_end_js);
        RunHandle {
            controller: Some(controller),
            _callbacks: vec![Box::new(on_data), Box::new(on_end_js)],
        }
    }
}
