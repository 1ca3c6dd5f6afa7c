//! K2 Tutor's interface (Leptos, client-side rendered, compiled to wasm). The same app runs in
//! the desktop window and in a browser served by `k2 serve`; only its [`transport`] differs.

mod app;
mod session;
mod transport;
mod views;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
