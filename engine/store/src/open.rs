//! Opening the session database: where it lives, refusing files it must not touch (another
//! program's database, a newer schema, a damaged file), applying migrations, and closing the
//! books on runs whose writer died.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqlitePool};

use crate::clock::now_ms;
use crate::decode::Fields;
use crate::error::{is_corruption, Result, StoreError};
use crate::Store;

/// The schema, from the top-level `migrations/` folder, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// File name of the database inside the data directory.
const DATABASE_FILE: &str = "sessions.db";

/// SQLite's `application_id` header field on every database K2 Tutor creates ("K2Tu"), so a
/// file is recognised as ours before anything is written to it.
pub const APPLICATION_ID: i32 = 0x4B32_5475;

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
        // Everything is read before anything is written: a file that is not ours is refused
        // before the pool below switches it to WAL or the migrations add tables.
        let stamp = if path.exists() {
            inspect_existing(path, migrator).await?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Stamp::Needed
        };
        let pool = connect(path).await?;
        if stamp == Stamp::Needed {
            sqlx::query(&format!("PRAGMA application_id = {APPLICATION_ID}"))
                .execute(&pool)
                .await?;
        }
        migrator
            .run(&pool)
            .await
            .map_err(|e| migration_error(path, e))?;
        let store = Store {
            pool,
            path: path.to_path_buf(),
            unreadable: Default::default(),
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
        let report: Vec<String> = rows
            .iter()
            .map(|r| {
                r.try_get::<String, _>(0)
                    .unwrap_or_else(|e| format!("unreadable report line: {e}"))
            })
            .collect();
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
            let fields = Fields::new(&row, "runs");
            let (id, pid, heartbeat): (i64, Option<i64>, i64) = match (
                fields.get("id"),
                fields.get("writer_pid"),
                fields.get("heartbeat_at"),
            ) {
                (Ok(id), Ok(pid), Ok(heartbeat)) => (id, pid, heartbeat),
                (Err(bad), _, _) | (_, Err(bad), _) | (_, _, Err(bad)) => {
                    self.report_unreadable(bad);
                    continue;
                }
            };
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

/// Whether the file still needs our [`APPLICATION_ID`] written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Needed,
    Done,
}

/// Looks at an existing file without changing it (a read-only connection): is it a database
/// at all, is it ours (our application id, else our schema, else empty), and is its schema
/// one this build may upgrade?
async fn inspect_existing(path: &Path, migrator: &Migrator) -> Result<Stamp> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| classify(path, e))?
        .filename(path)
        .read_only(true);
    let mut conn = options.connect().await.map_err(|e| classify(path, e))?;
    let result = inspect(path, migrator, &mut conn).await;
    conn.close().await.ok();
    result
}

async fn inspect(
    path: &Path,
    migrator: &Migrator,
    conn: &mut sqlx::SqliteConnection,
) -> Result<Stamp> {
    let classified = |e| classify(path, e);
    let application_id: i32 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await
        .map_err(classified)?;
    let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master")
        .fetch_one(&mut *conn)
        .await
        .map_err(classified)?;
    let has_migrations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(classified)?;
    // Read as bytes, and a table of that name that is not sqlx's counts as not ours: the file
    // may be anything.
    let first_migration: Option<Vec<u8>> = if has_migrations > 0 {
        match sqlx::query_scalar(
            "SELECT CAST(description AS BLOB) FROM _sqlx_migrations WHERE version = 1",
        )
        .fetch_optional(&mut *conn)
        .await
        {
            Ok(description) => description,
            Err(e) if is_corruption(&e) => return Err(classify(path, e)),
            Err(_) => None,
        }
    } else {
        None
    };
    // A database made before [`APPLICATION_ID`] existed is recognised as ours by the name of
    // its first migration (not its checksum: a development build that changed one gets its
    // own message from the migrator).
    let ours = migrator
        .iter()
        .find(|m| m.version == 1)
        .map(|m| m.description.as_bytes());
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    let stamp = match application_id {
        APPLICATION_ID => Stamp::Done,
        0 if objects == 0 => Stamp::Needed,
        0 if ours.is_some() && first_migration.as_deref() == ours => Stamp::Needed,
        0 => {
            return Err(foreign(
                "it is another program's SQLite database (its tables are not K2 Tutor's)".into(),
            ))
        }
        other => {
            return Err(foreign(format!(
                "its SQLite application id is {other:#010x}, another program's (K2 Tutor's is \
                 {APPLICATION_ID:#010x})"
            )))
        }
    };
    if has_migrations > 0 {
        let found: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations")
                .fetch_one(&mut *conn)
                .await
                .map_err(classified)?;
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        if found > known {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
    }
    Ok(stamp)
}

/// The pool every store uses: WAL, foreign keys on, a writer waits for another.
async fn connect(path: &Path) -> Result<SqlitePool> {
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
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| classify(path, e))
}

/// sqlx's migration failures in words that say what happened and what to do.
fn migration_error(path: &Path, error: MigrateError) -> StoreError {
    match error {
        MigrateError::VersionMismatch(version) => StoreError::SchemaMismatch {
            path: path.to_path_buf(),
            version,
        },
        MigrateError::Dirty(version) => StoreError::InterruptedUpgrade {
            path: path.to_path_buf(),
            version,
        },
        MigrateError::Execute(sqlx_error) if is_corruption(&sqlx_error) => {
            classify(path, sqlx_error)
        }
        other => StoreError::Migrate(other),
    }
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
