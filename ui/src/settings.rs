//! Look and feel, kept in this browser's (or the desktop window's) storage: the theme (follow
//! the system, light or dark) and the text size.

use leptos::prelude::*;

use crate::session::local_storage as storage;

const THEME_KEY: &str = "k2.theme";
const SIZE_KEY: &str = "k2.font-size";

fn load(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

fn save(key: &str, value: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(key, value);
    }
}

/// Sets `data-theme` and the root font size on the page's root element.
fn apply(theme: &str, size: u32) {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-theme", theme);
        let _ = root.set_attribute("style", &format!("font-size: {size}px"));
    }
}

#[component]
pub fn Settings() -> impl IntoView {
    let theme = RwSignal::new(load(THEME_KEY).unwrap_or_else(|| "system".into()));
    let size = RwSignal::new(load(SIZE_KEY).and_then(|s| s.parse().ok()).unwrap_or(16u32));
    Effect::new(move |_| {
        apply(&theme.get(), size.get());
        save(THEME_KEY, &theme.get());
        save(SIZE_KEY, &size.get().to_string());
    });
    let resize = move |delta: i32| size.update(|s| *s = (*s as i32 + delta).clamp(12, 28) as u32);
    view! {
        <span class="settings">
            <select id="theme" aria-label="Theme"
                on:change=move |ev| theme.set(event_target_value(&ev))>
                {["system", "light", "dark"].map(|t| view! {
                    <option value=t selected=move || theme.get() == t>{t}</option>
                }).collect_view()}
            </select>
            <button id="smaller" aria-label="Smaller text" on:click=move |_| resize(-1)>"A−"</button>
            <button id="larger" aria-label="Larger text" on:click=move |_| resize(1)>"A+"</button>
        </span>
    }
}
