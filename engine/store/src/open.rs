//! Opening the session database: where it lives, refusing files it must not touch (a newer
//! schema, a damaged file), applying migrations, and closing the books on runs whose writer
//! died.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};

use crate::clock::now_ms;
use crate::error::{is_corruption, Result, StoreError};
use crate::Store;

/// The schema, from the top-level `migrations/` folder, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// File name of the database inside the data directory.
const DATABASE_FILE: &str = "sessions.db";

/// A `running` run whose writer has not been heard from for this long is interrupted, even where
/// the writer's process cannot be looked up.
const STALE_AFTER_MS: i64 = 60_000;

/// `$K2_DB` if set, else `sessions.db` in the platform data directory
/// (`~/.local/share/k2-tutor/` on Linux).
pub fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os("K2_DB").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("k2-tutor")
        .join(DATABASE_FILE)
}

/// The newest schema version this build knows.
pub fn latest_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and upgrades it to the latest schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path.as_ref(), &MIGRATOR).await
    }

    /// Opens with a given migrator (tests open with an older schema's migrations).
    #[doc(hidden)]
    pub async fn open_with(path: &Path, migrator: &Migrator) -> Result<Store> {
        if path.exists() {
            inspect_existing(path, migrator).await?;
        } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses nothing when the process dies; only a power cut can drop
            // the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| classify(path, e))?;
        migrator.run(&pool).await?;
        let store = Store {
            pool,
            path: path.to_path_buf(),
        };
        let interrupted = store.close_abandoned_runs().await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "runs left running by a crash marked interrupted"
            );
        }
        Ok(store)
    }

    /// Opens the database at [`default_path`].
    pub async fn open_default() -> Result<Store> {
        Self::open(default_path()).await
    }

    /// Moves an unusable database (and its WAL files) aside, to `NAME.damaged-TIME.db` next to
    /// it, and opens a new one in its place. Returns the new store and where the old file went.
    pub async fn set_aside_and_start_fresh(path: impl AsRef<Path>) -> Result<(Store, PathBuf)> {
        let path = path.as_ref();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sessions".into());
        let kept = path.with_file_name(format!("{stem}.damaged-{}.db", now_ms()));
        std::fs::rename(path, &kept)?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                std::fs::rename(&side, format!("{}{suffix}", kept.display()))?;
            }
        }
        tracing::warn!(old = %kept.display(), "damaged session database set aside");
        Ok((Self::open(path).await?, kept))
    }

    /// `PRAGMA integrity_check`: `Ok` when SQLite finds nothing wrong.
    pub async fn integrity_check(&self) -> Result<()> {
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        let report: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        if report == ["ok"] {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: report.join("; "),
            })
        }
    }

    /// The schema version the open database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Marks `running` runs whose writer is gone as `interrupted`; their events stay.
    async fn close_abandoned_runs(&self) -> Result<u64> {
        let rows =
            sqlx::query("SELECT id, writer_pid, heartbeat_at FROM runs WHERE status = 'running'")
                .fetch_all(&self.pool)
                .await?;
        let now = now_ms();
        let mut closed = 0;
        for row in rows {
            let id: i64 = row.get("id");
            let pid: Option<i64> = row.get("writer_pid");
            let heartbeat: i64 = row.get("heartbeat_at");
            let writer_gone = pid.is_some_and(|pid| !process_alive(pid));
            if writer_gone || now - heartbeat > STALE_AFTER_MS {
                closed += sqlx::query(
                    "UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at \
                     WHERE id = ? AND status = 'running'",
                )
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
        }
        Ok(closed)
    }
}

/// Looks at an existing file without changing it: is it a database at all, and is its schema
/// one this build may upgrade?
async fn inspect_existing(path: &Path, migrator: &Migrator) -> Result<()> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| classify(path, e))?
        .filename(path)
        .read_only(true);
    let mut conn = options.connect().await.map_err(|e| classify(path, e))?;
    let has_migrations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| classify(path, e))?;
    if has_migrations > 0 {
        let found: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| classify(path, e))?;
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        if found > known {
            conn.close().await.ok();
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
    }
    conn.close().await.ok();
    Ok(())
}

fn classify(path: &Path, error: sqlx::Error) -> StoreError {
    if is_corruption(&error) {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source: error,
        }
    }
}

#[cfg(unix)]
fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid == std::process::id() as libc::pid_t {
        return true;
    }
    // Signal 0 checks existence only. EPERM means it exists but belongs to someone else.
    // SAFETY: kill with signal 0 sends nothing and has no memory effects.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_pid: i64) -> bool {
    // Without a cheap portable check, rely on the heartbeat going stale.
    true
}
