//! The server's bearer token: given (`--token`, `K2_SERVE_TOKEN`), else the one generated at
//! the first start and kept in the data directory, so lab machines configured once keep working
//! across restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

/// Where the generated token is kept.
pub fn default_token_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("k2-tutor").join("serve-token"))
}

/// The token and whether it was generated just now (so the caller prints it).
pub fn load_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let token = existing.trim().to_owned();
        if token.len() >= 16 {
            return Ok((token, false));
        }
    }
    let token = generate();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{token}")?;
    Ok((token, true))
}

/// 128 random bits as hex.
pub fn generate() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/serve-token");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.len(), 32);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "token file readable by others: {mode:o}");
        }
    }
}
