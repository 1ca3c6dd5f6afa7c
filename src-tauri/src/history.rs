//! The history commands of the desktop app: the same operations as `k2 serve`'s
//! `/v1/k2/runs…` routes (both are adapters over `k2_history`), plus saving exports to the
//! user's Downloads folder.

use k2_history::{AttemptResult, HistoryItem, NewNote};
use k2_protocol::Event;
use k2_store::{Note, Store};
use tauri::{AppHandle, Manager, State};

use crate::commands::DesktopState;

fn store<'a>(state: &'a State<'_, DesktopState>) -> Result<&'a Store, String> {
    state.store.as_ref().ok_or_else(|| {
        "runs are not kept: the session database could not be opened (see the log)".into()
    })
}

/// The newest runs, or those matching `query`.
#[tauri::command]
pub async fn list_runs(
    state: State<'_, DesktopState>,
    query: Option<String>,
) -> Result<Vec<HistoryItem>, String> {
    let Some(store) = &state.store else {
        return Ok(Vec::new());
    };
    k2_history::list(store, query.as_deref())
        .await
        .map_err(|e| e.to_string())
}

/// A stored run's events, to replay it exactly as it streamed.
#[tauri::command]
pub async fn run_events(state: State<'_, DesktopState>, run: i64) -> Result<Vec<Event>, String> {
    k2_history::events(store(&state)?, run)
        .await
        .map_err(|e| e.to_string())
}

/// Removes a stored run and everything attached to it (the UI asks for confirmation first).
#[tauri::command]
pub async fn delete_run(state: State<'_, DesktopState>, run: i64) -> Result<(), String> {
    k2_history::delete(store(&state)?, run)
        .await
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn run_notes(state: State<'_, DesktopState>, run: i64) -> Result<Vec<Note>, String> {
    k2_history::notes(store(&state)?, run)
        .await
        .map_err(|e| e.to_string())
}

/// Adds a teacher's note; answers all the run's notes.
#[tauri::command]
pub async fn add_note(
    state: State<'_, DesktopState>,
    run: i64,
    note: NewNote,
) -> Result<Vec<Note>, String> {
    k2_history::add_note(store(&state)?, run, &note)
        .await
        .map_err(|e| e.to_string())
}

/// Checks a student's answer against the run's and keeps the attempt.
#[tauri::command]
pub async fn check_attempt(
    state: State<'_, DesktopState>,
    run: i64,
    answer: String,
) -> Result<AttemptResult, String> {
    k2_history::check_attempt(store(&state)?, run, &answer)
        .await
        .map_err(|e| e.to_string())
}

/// Saves a run as Markdown or HTML in the Downloads folder (the home folder without one) and
/// answers the file's path. An existing file is never overwritten.
#[tauri::command]
pub async fn export_run(
    app: AppHandle,
    state: State<'_, DesktopState>,
    run: i64,
    format: String,
) -> Result<String, String> {
    let exported = k2_history::export(store(&state)?, run, &format)
        .await
        .map_err(|e| e.to_string())?;
    let folder = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| format!("no folder to save the export in: {e}"))?;
    let path = free_path(&folder, &exported.file_name);
    std::fs::write(&path, exported.content)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

/// `folder/name`, or `folder/stem (2).ext` and so on when that exists.
fn free_path(folder: &std::path::Path, name: &str) -> std::path::PathBuf {
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    (1..)
        .map(|n| match n {
            1 => folder.join(name),
            n => folder.join(format!("{stem} ({n}).{extension}")),
        })
        .find(|path| !path.exists())
        .expect("some name is free")
}

#[cfg(test)]
mod tests {
    use super::free_path;

    #[test]
    fn exports_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            free_path(dir.path(), "k2-run-1.md"),
            dir.path().join("k2-run-1.md")
        );
        std::fs::write(dir.path().join("k2-run-1.md"), "x").unwrap();
        std::fs::write(dir.path().join("k2-run-1 (2).md"), "x").unwrap();
        assert_eq!(
            free_path(dir.path(), "k2-run-1.md"),
            dir.path().join("k2-run-1 (3).md")
        );
    }
}
