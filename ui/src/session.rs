//! Where the browser app finds its server and token. `k2 serve` prints a link with the token
//! in the URL fragment (`#token=…`: never sent to any server, not kept in its logs); the app
//! keeps it in this browser's storage and takes it out of the address bar.

const TOKEN_KEY: &str = "k2.token";

/// This browser's (or the desktop window's) local storage, where the app keeps its settings.
pub fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

pub fn server_base() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// The token from `#token=…` (remembered), else the remembered one.
pub fn token() -> Option<String> {
    let window = web_sys::window()?;
    let storage = local_storage();
    let hash = window.location().hash().unwrap_or_default();
    if let Some(token) = hash.strip_prefix("#token=").filter(|t| !t.is_empty()) {
        if let Some(storage) = &storage {
            let _ = storage.set_item(TOKEN_KEY, token);
        }
        if let Ok(history) = window.history() {
            let path = window.location().pathname().unwrap_or_else(|_| "/".into());
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
        return Some(token.to_owned());
    }
    storage?.get_item(TOKEN_KEY).ok().flatten()
}

/// The session title runs are filed under, as last typed in this browser (empty: the
/// server's or the app's own session).
pub fn remembered_session() -> String {
    local_storage()
        .and_then(|s| s.get_item(SESSION_KEY).ok().flatten())
        .unwrap_or_default()
}

pub fn remember_session(title: &str) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(SESSION_KEY, title);
    }
}

const SESSION_KEY: &str = "k2.session";

pub fn remember_token(token: &str) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(TOKEN_KEY, token);
    }
}

/// Forgets this browser's token and session title: on a shared lab computer, the next
/// student signs in with their own link.
pub fn sign_out() {
    if let Some(storage) = local_storage() {
        let _ = storage.remove_item(TOKEN_KEY);
        let _ = storage.remove_item(SESSION_KEY);
    }
}
