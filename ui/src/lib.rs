//! K2 Tutor's interface (Leptos, client-side rendered, compiled to wasm). The same app runs in
//! the desktop window and in a browser served by `k2 serve`; only its [`transport`] differs.

// Warnings fail the build here (scripts/build-ui.sh passes no -D warnings: RUSTFLAGS would
// rebuild the standard library).
#![deny(warnings)]

mod app;
mod class;
mod hints;
mod history;
mod models;
mod recommended;
mod record;
mod render;
mod review;
mod run_settings;
mod session;
mod settings;
mod student;
mod transport;
mod views;
mod work;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
