//! The desktop app's history: one command, `history`, taking a [`HistoryRequest`] and
//! answering `k2_history::dispatch`'s reply, as `k2 serve`'s `POST /v1/k2/history` does. Only
//! exports differ: the app saves the file in the user's Downloads folder and answers where.

use k2_app::ModelWorkReviewer;
use k2_history::{HistoryReply, HistoryRequest, WorkReviewer};
use tauri::{AppHandle, Manager, State};

use crate::commands::DesktopState;

/// Any history operation; an export is saved in the Downloads folder (the home folder without
/// one), never over an existing file, and answered as [`HistoryReply::Saved`].
#[tauri::command]
pub async fn history(
    app: AppHandle,
    state: State<'_, DesktopState>,
    request: HistoryRequest,
) -> Result<HistoryReply, String> {
    let Some(store) = &state.store else {
        return k2_history::without_store(&request).ok_or_else(|| {
            "runs are not kept: the session database could not be opened (see the log)".into()
        });
    };
    // Checked work the numbers could not decide is also read by the judge (planner) model,
    // once the models are loaded (a check never waits for a load).
    let reviewer = match (&request, state.engine().status()) {
        (HistoryRequest::CheckWork { .. }, Some(Ok(backends))) => {
            Some(ModelWorkReviewer::new(backends.planner.clone()))
        }
        _ => None,
    };
    let reviewer = reviewer.as_ref().map(|r| r as &dyn WorkReviewer);
    match k2_history::dispatch_with_reviewer(store, request, reviewer).await {
        Ok(HistoryReply::Export(exported)) => {
            let folder = app
                .path()
                .download_dir()
                .or_else(|_| app.path().home_dir())
                .map_err(|e| format!("no folder to save the export in: {e}"))?;
            let path = free_path(&folder, &exported.file_name);
            std::fs::write(&path, exported.content)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(HistoryReply::Saved {
                path: path.display().to_string(),
            })
        }
        other => other.map_err(|e| e.to_string()),
    }
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
