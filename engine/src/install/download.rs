//! Downloading a model from Hugging Face (or a mirror: `HF_ENDPOINT`, as Hugging Face's own
//! tools read it), with progress, resume and checksum.
//!
//! - Resume: bytes arrive in `NAME.partial`; a later download of the same file asks only for
//!   the rest (`Range`), and starts over if the server does not do ranges.
//! - Checksum: the SHA-256 given by the caller, else the one Hugging Face publishes for LFS
//!   files (`X-Linked-Etag` on the file's redirect). A mismatch deletes the download.
//! - The finished file must be a model this engine can read before it takes its name.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::{partial_path, refuse_existing, rename, sha256_file, Progress};
use crate::decode::plain::CancelToken;
use crate::error::{EngineError, Result};
use crate::models_dir::{describe_model, ModelInfo};

pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A file of a Hugging Face repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HfFile {
    /// `owner/name`.
    pub repo: String,
    /// Path inside the repository; the model is installed under its last part.
    pub file: String,
    /// Branch, tag or commit (`main` when empty).
    #[serde(default)]
    pub revision: String,
    /// Expected SHA-256 (hex); checked when given, else Hugging Face's own.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl HfFile {
    pub fn url(&self) -> String {
        let endpoint = std::env::var(ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let revision = if self.revision.is_empty() {
            "main"
        } else {
            &self.revision
        };
        format!(
            "{}/{}/resolve/{revision}/{}",
            endpoint.trim_end_matches('/'),
            self.repo,
            self.file
        )
    }

    fn checked(&self) -> Result<()> {
        let valid_repo = self.repo.split('/').count() == 2
            && !self.repo.contains("..")
            && self
                .repo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !valid_repo {
            return Err(EngineError::InvalidSetting(format!(
                "`{}` is not a Hugging Face repository (it looks like owner/name)",
                self.repo
            )));
        }
        if self.file.is_empty()
            || self
                .file
                .split('/')
                .any(|part| part == ".." || part.is_empty())
        {
            return Err(EngineError::InvalidSetting(format!(
                "`{}` is not a file of the repository",
                self.file
            )));
        }
        if let Some(sum) = &self.sha256 {
            if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(EngineError::InvalidSetting(format!(
                    "`{sum}` is not a SHA-256 checksum (64 hexadecimal digits)"
                )));
            }
        }
        Ok(())
    }
}

/// Downloads `file` into `dir` and answers the installed model. `progress` gets bytes done and
/// in all; `cancel` stops it, keeping what arrived for a later resume.
pub fn download_model(
    file: &HfFile,
    dir: &Path,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<ModelInfo> {
    file.checked()?;
    let name = file.file.rsplit('/').next().unwrap_or(&file.file);
    let target = dir.join(name);
    refuse_existing(&target)?;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let url = file.url();
    let fail = |message: String| EngineError::Download {
        url: url.clone(),
        message,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    // Hugging Face is asked for its checksum only when the caller gave none.
    let published = file
        .sha256
        .is_none()
        .then(|| published_checksum(&url))
        .flatten();
    let partial = partial_path(&target);
    let have = partial.metadata().map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(&url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(response) => response,
        // Asked for bytes past the end: what we have is the whole file.
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            return finish(file, published, &partial, &target, &fail)
        }
        Err(ureq::Error::Status(code, response)) => {
            let hint = match code {
                401 | 403 => " (the repository may be gated or private)",
                404 => " (check the repository and file names)",
                _ => "",
            };
            return Err(fail(format!(
                "HTTP {code} {}{hint}",
                response.status_text()
            )));
        }
        Err(e) => return Err(fail(format!("{e} (are you online?)"))),
    };
    let resumed = response.status() == 206;
    let length: Option<u64> = response
        .header("Content-Length")
        .and_then(|l| l.parse().ok());
    let total = length.map(|l| if resumed { l + have } else { l });
    let mut output = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&partial)
        .map_err(|e| EngineError::io(&partial, e))?;
    let mut done = if resumed { have } else { 0 };
    progress(done, total);
    let mut body = response.into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let n = match body.read(&mut buffer) {
            Ok(n) => n,
            Err(e) => {
                return Err(fail(format!(
                    "the connection broke after {done} bytes ({e}); download again to resume"
                )))
            }
        };
        if n == 0 {
            break;
        }
        output
            .write_all(&buffer[..n])
            .map_err(|e| EngineError::io(&partial, e))?;
        done += n as u64;
        progress(done, total);
    }
    output
        .sync_all()
        .map_err(|e| EngineError::io(&partial, e))?;
    if let Some(total) = total.filter(|&t| t != done) {
        return Err(fail(format!(
            "the server sent {done} of {total} bytes; download again to resume"
        )));
    }
    finish(file, published, &partial, &target, &fail)
}

/// Checks the complete `.partial` file and installs it under its name.
fn finish(
    file: &HfFile,
    published: Option<String>,
    partial: &Path,
    target: &Path,
    fail: &dyn Fn(String) -> EngineError,
) -> Result<ModelInfo> {
    if let Some(expected) = file.sha256.clone().or(published) {
        let found = sha256_file(partial)?;
        if !found.eq_ignore_ascii_case(&expected) {
            let _ = std::fs::remove_file(partial);
            return Err(EngineError::ChecksumMismatch {
                path: target.to_owned(),
                expected,
                found,
            });
        }
    }
    if let Err(e) = describe_model(partial) {
        let _ = std::fs::remove_file(partial);
        return Err(fail(format!(
            "the file is not a model K2 Tutor can run: {e}"
        )));
    }
    rename(partial, target)?;
    describe_model(target)
}

/// The SHA-256 Hugging Face publishes for an LFS file: the `X-Linked-Etag` of the redirect a
/// HEAD request (not followed) answers with. `None` for small or non-LFS files, or mirrors
/// that do not say.
fn published_checksum(url: &str) -> Option<String> {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(15))
        .build();
    let response = match agent.head(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(_) => return None,
    };
    let etag = response
        .header("X-Linked-Etag")
        .or_else(|| response.header("ETag"))?
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase();
    (etag.len() == 64 && etag.chars().all(|c| c.is_ascii_hexdigit())).then_some(etag)
}
