//! How runs are made: candidates, planning, selection and sampling, kept in this browser's (or
//! the desktop window's) storage so a student's or teacher's choice survives a restart.

use k2_protocol::{Effort, RunSettings, Selection};
use leptos::prelude::*;

use crate::session::local_storage;

const KEY: &str = "k2.run-settings";

/// The remembered settings (the engine's defaults the first time, or when unreadable).
pub fn load() -> RunSettings {
    local_storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

fn save(settings: &RunSettings) {
    if let (Some(storage), Ok(json)) = (local_storage(), serde_json::to_string(settings)) {
        let _ = storage.set_item(KEY, &json);
    }
}

/// The settings signal of the page, saved whenever it changes.
pub fn remembered() -> RwSignal<RunSettings> {
    let settings = RwSignal::new(load());
    Effect::new(move |_| settings.with(save));
    settings
}

/// A number field bound to part of the settings; out-of-range or unreadable input is ignored
/// and the field shows the value in force.
fn number_field<T>(
    settings: RwSignal<RunSettings>,
    id: &'static str,
    label: &'static str,
    (min, max, step): (T, T, &'static str),
    get: fn(&RunSettings) -> T,
    set: fn(&mut RunSettings, T),
) -> impl IntoView
where
    T: std::str::FromStr + PartialOrd + Copy + ToString + Send + Sync + 'static,
{
    view! {
        <label>{label}
            <input id=id type="number" min=min.to_string() max=max.to_string() step=step
                prop:value=move || settings.with(|s| get(s).to_string())
                on:change=move |ev| {
                    match event_target_value(&ev).trim().parse::<T>() {
                        Ok(v) if v >= min && v <= max => settings.update(|s| set(s, v)),
                        // Show the value in force again.
                        _ => settings.update(|_| {}),
                    }
                } />
        </label>
    }
}

/// The "Run settings" panel: selection and sampling (candidates, planning and length are on
/// the problem's own row).
#[component]
pub fn RunSettingsPanel(settings: RwSignal<RunSettings>) -> impl IntoView {
    let selections = [
        (Selection::VoteThenJudge, "vote, then judge a split"),
        (Selection::Vote, "majority vote"),
        (Selection::Judge, "pairwise judge"),
    ];
    view! {
        <details id="run-settings" class="run-settings">
            <summary>"Run settings"</summary>
            <div class="controls">
                <label>"Choose the answer by "
                    <select id="selection" on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        if let Some((s, _)) = selections.iter().find(|(s, _)| s.name() == chosen) {
                            settings.update(|r| r.selection = *s);
                        }
                    }>
                        {selections.map(|(s, label)| view! {
                            <option value=s.name()
                                selected=move || settings.with(|r| r.selection == s)>{label}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>"Reasoning effort "
                    <select id="effort" on:change=move |ev| {
                        // "" is the model's own default; anything unknown keeps it too.
                        let effort = event_target_value(&ev).parse::<Effort>().ok();
                        settings.update(|r| r.effort = effort);
                    }>
                        <option value="" selected=move || settings.with(|r| r.effort.is_none())>
                            "model default"</option>
                        {Effort::ALL.map(|e| view! {
                            <option value=e.name()
                                selected=move || settings.with(|r| r.effort == Some(e))>{e.name()}</option>
                        }).collect_view()}
                    </select>
                </label>
                {number_field(settings, "temperature", "Temperature ", (0.0f32, 2.0, "0.05"),
                    |s| s.sampling.temperature, |s, v| s.sampling.temperature = v)}
                {number_field(settings, "top-p", "Top-p ", (0.05f32, 1.0, "0.05"),
                    |s| s.sampling.top_p, |s, v| s.sampling.top_p = v)}
                {number_field(settings, "seed", "Seed ", (0u64, u64::from(u32::MAX), "1"),
                    |s| s.sampling.seed, |s, v| s.sampling.seed = v)}
                {number_field(settings, "plan-max-tokens", "Plan length ", (16usize, 4096, "16"),
                    |s| s.plan_max_tokens, |s, v| s.plan_max_tokens = v)}
                <button id="reset-settings" class="link"
                    on:click=move |_| settings.set(RunSettings::default())>"Defaults"</button>
            </div>
            <p class="muted">"Temperature 1.0 and top-p 0.95 are K2-Think's; 0 is greedy. \
                The same seed repeats a run on the same model, except where a classroom \
                server reuses a prompt it has already read (its arithmetic then rounds \
                differently). Lower effort makes \
                reasoning models think less: K2 Horizon switches to its faster thinking, Qwen3 \
                answers without thinking at low, others stop thinking after a token budget."</p>
        </details>
    }
}
