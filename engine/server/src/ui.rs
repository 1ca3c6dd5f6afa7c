//! The browser UI at `/`: the built UI folder (`ui/dist`) when there is one, so a classroom
//! needs nothing but a browser. Paths are resolved inside that folder only (`..`, absolute
//! and encoded escapes are refused by `ServeDir`). Without a built UI, `/` says how to build
//! it and where the API is.

use std::path::PathBuf;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

pub fn routes(ui_dir: Option<PathBuf>) -> Router<AppState> {
    match ui_dir {
        Some(dir) if dir.join("index.html").is_file() => {
            let index = ServeFile::new(dir.join("index.html"));
            Router::new().fallback_service(ServeDir::new(dir).fallback(index))
        }
        _ => Router::new().route("/", get(no_ui)),
    }
}

async fn no_ui() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>K2 Tutor server</title></head>",
        "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">",
        "<h1>K2 Tutor server</h1>",
        "<p>This server answers the OpenAI-compatible API at <code>/v1/chat/completions</code> ",
        "and runs the K2 scaffold at <code>/v1/k2/runs</code> (both need the server's token).</p>",
        "<p>The browser UI is not built on this machine: run <code>scripts/build-ui.sh</code> ",
        "and start <code>k2 serve</code> again (or pass <code>--ui DIR</code>).</p></body></html>"
    ))
}
