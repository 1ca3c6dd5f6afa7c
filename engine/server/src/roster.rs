//! The class roster (`k2 serve --roster FILE`): each student's name and token.
//!
//! ```toml
//! [students]
//! alice = "sha256:9f86d0…"   # written by `k2 serve roster add alice`
//! bob = "a-token-typed-by-hand"
//! ```
//!
//! A token is kept as its SHA-256 (`roster add` writes only that; a hand-written plain token is
//! hashed when read), so the file opens nothing by itself. A presented token is hashed and
//! compared with every entry in constant time. The server re-reads the file when it changes,
//! so `roster add` and `roster remove` take effect without a restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::same_secret;

/// Where the roster is kept unless `--roster` says otherwise.
pub fn default_roster_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("k2-tutor").join("roster.toml"))
}

/// A hand-written token shorter than this is refused: a guessable token opens a student's runs.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest student name.
pub const MAX_NAME_CHARS: usize = 64;
const HASH_PREFIX: &str = "sha256:";

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot read the roster {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the roster {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the roster {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Name(String),
}

/// One student on the roster.
#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    hash: [u8; 32],
}

/// The roster as read from its file.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    entries: Vec<Entry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    #[serde(default)]
    students: BTreeMap<String, String>,
}

impl Roster {
    /// Reads `path`; a missing file is an empty roster (`roster add` creates it).
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Roster::parse(&text).map_err(|message| RosterError::Invalid {
                path: path.to_owned(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Roster::default()),
            Err(source) => Err(RosterError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses the file's text; the error says which line is wrong and why.
    pub fn parse(text: &str) -> Result<Roster, String> {
        let file: RosterFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries: Vec<Entry> = Vec::with_capacity(file.students.len());
        for (name, token) in file.students {
            check_name(&name)?;
            let hash = match token.strip_prefix(HASH_PREFIX) {
                Some(hex) => parse_hash(hex).ok_or_else(|| {
                    format!("{name}: `sha256:` must be followed by 64 hex digits")
                })?,
                None if token.trim().len() < MIN_TOKEN_LEN => {
                    return Err(format!(
                        "{name}: a token must be at least {MIN_TOKEN_LEN} characters \
                         (`k2 serve roster add {name}` makes a random one)"
                    ))
                }
                None => hash_token(token.trim()),
            };
            if let Some(twin) = entries.iter().find(|e| e.hash == hash) {
                return Err(format!(
                    "{name} and {} have the same token: each student needs their own",
                    twin.name
                ));
            }
            entries.push(Entry {
                name: name.into(),
                hash,
            });
        }
        Ok(Roster { entries })
    }

    /// The student whose token this is. Every entry is compared, and each comparison takes the
    /// same time whatever matched, so timing tells nothing about tokens.
    pub fn student_with(&self, token: &str) -> Option<Arc<str>> {
        let presented = hash_token(token);
        let mut found = None;
        for entry in &self.entries {
            if same_secret(&presented, &entry.hash) {
                found = Some(entry.name.clone());
            }
        }
        found
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `k2 serve roster add NAME`: adds the student with a fresh random token, which it answers
/// (the file keeps only its hash, so this is the one time it is shown).
pub fn add_student(path: &Path, name: &str) -> Result<String, RosterError> {
    check_name(name).map_err(RosterError::Name)?;
    let mut file = read_file(path)?;
    if file.students.contains_key(name) {
        return Err(RosterError::Name(format!(
            "{name} is already on the roster; `k2 serve roster remove {name}` first to give them a new token"
        )));
    }
    let token = crate::token::generate();
    file.students.insert(
        name.to_owned(),
        format!("{HASH_PREFIX}{}", hex(&hash_token(&token))),
    );
    write_file(path, &file)?;
    Ok(token)
}

/// `k2 serve roster remove NAME`: their token stops opening anything (their runs stay).
pub fn remove_student(path: &Path, name: &str) -> Result<(), RosterError> {
    let mut file = read_file(path)?;
    if file.students.remove(name).is_none() {
        return Err(RosterError::Name(format!("{name} is not on the roster")));
    }
    write_file(path, &file)
}

fn read_file(path: &Path) -> Result<RosterFile, RosterError> {
    // Checked whole first, so a damaged file is never rewritten without its errors.
    Roster::load(path)?;
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| RosterError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RosterFile::default()),
        Err(source) => Err(RosterError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a temporary file readable by its owner only, then renames it over the roster, so a
/// server reading it meanwhile sees the old roster or the new one, never half of one.
fn write_file(path: &Path, file: &RosterFile) -> Result<(), RosterError> {
    let failed = |source| RosterError::Write {
        path: path.to_owned(),
        source,
    };
    let text = toml::to_string(file).map_err(|e| failed(std::io::Error::other(e)))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("toml.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(&temporary).map_err(failed)?;
    out.write_all(b"# K2 Tutor class roster: `k2 serve roster add|list|remove`.\n")
        .and_then(|()| out.write_all(text.as_bytes()))
        .and_then(|()| out.sync_all())
        .map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(format!(
            "`{name}`: a student's name must not be empty or start or end with spaces"
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "a student's name has at most {MAX_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("a student's name must not contain control characters".into());
    }
    Ok(())
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The roster a running server checks tokens against, re-read when its file changes (looked
/// at most once every [`RELOAD_EVERY`]). A file that became invalid leaves the last good
/// roster in force, and the log says why.
pub struct LiveRoster {
    path: PathBuf,
    state: Mutex<Loaded>,
}

/// How often a running server looks whether the roster file changed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

struct Loaded {
    roster: Arc<Roster>,
    modified: Option<SystemTime>,
    looked: Instant,
}

impl LiveRoster {
    pub fn open(path: PathBuf) -> Result<LiveRoster, RosterError> {
        let roster = Roster::load(&path)?;
        warn_if_readable_by_others(&path);
        Ok(LiveRoster {
            state: Mutex::new(Loaded {
                roster: Arc::new(roster),
                modified: modified(&path),
                looked: Instant::now(),
            }),
            path,
        })
    }

    /// The roster in force now.
    pub fn current(&self) -> Arc<Roster> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.looked.elapsed() >= RELOAD_EVERY {
            state.looked = Instant::now();
            let now = modified(&self.path);
            if now != state.modified {
                state.modified = now;
                match Roster::load(&self.path) {
                    Ok(roster) => {
                        tracing::info!(students = roster.entries.len(), "roster re-read");
                        state.roster = Arc::new(roster);
                    }
                    Err(e) => tracing::error!("{e}; the roster read before stays in force"),
                }
            }
        }
        state.roster.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "the roster {} can be read by other users of this machine: chmod 600 it",
                    path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_tokens_name_their_student() {
        let hashed = hex(&hash_token("alice-token-0123456789"));
        let roster = Roster::parse(&format!(
            "[students]\nalice = \"sha256:{hashed}\"\n\"Bob Lee\" = \"bob-token-0123456789\"\n"
        ))
        .unwrap();
        assert_eq!(
            roster.student_with("alice-token-0123456789").as_deref(),
            Some("alice")
        );
        assert_eq!(
            roster.student_with("bob-token-0123456789").as_deref(),
            Some("Bob Lee")
        );
        assert_eq!(roster.student_with("alice-token-012345678"), None);
        assert_eq!(roster.student_with(""), None);
    }

    #[test]
    fn bad_rosters_say_what_is_wrong() {
        let cases = [
            ("[students]\nalice = \"short\"\n", "at least 16"),
            ("[students]\nalice = \"sha256:abc\"\n", "64 hex digits"),
            (
                "[students]\na = \"same-token-0123456789\"\nb = \"same-token-0123456789\"\n",
                "same token",
            ),
            ("[teachers]\nx = \"y\"\n", "unknown field"),
            (
                "[students]\n\"\" = \"a-token-0123456789ab\"\n",
                "must not be empty",
            ),
            (
                "[students]\n\"a\\u0007\" = \"a-token-0123456789ab\"\n",
                "control",
            ),
            ("[students\n", "TOML"),
        ];
        for (text, expected) in cases {
            let error = Roster::parse(text).unwrap_err();
            assert!(
                error.contains(expected) || (expected == "TOML" && !error.is_empty()),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn add_keeps_only_a_hash_in_a_private_file_and_remove_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("class/roster.toml");
        let token = add_student(&path, "alice").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "{text}");
        assert!(text.contains("sha256:"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        assert!(add_student(&path, "alice").is_err());
        let bob = add_student(&path, "bob").unwrap();
        let roster = Roster::load(&path).unwrap();
        assert_eq!(roster.student_with(&token).as_deref(), Some("alice"));
        assert_eq!(roster.student_with(&bob).as_deref(), Some("bob"));
        remove_student(&path, "alice").unwrap();
        let roster = Roster::load(&path).unwrap();
        assert_eq!(roster.student_with(&token), None);
        assert_eq!(roster.names().collect::<Vec<_>>(), ["bob"]);
        assert!(remove_student(&path, "alice").is_err());
    }
}
