//! Refusing work that cannot fit in this machine's memory before it is allocated.
//!
//! Sizes come from model files (weights, layers, context) and from requests (candidates,
//! tokens). Rust aborts the whole process when an allocation fails, so a model or a request
//! that asks for more than the machine has must be refused with the numbers before the first
//! byte is allocated, not discovered by the allocator. What counts is what Linux reports as
//! available (`MemAvailable`: free memory plus caches it can drop); where that cannot be read
//! (other systems) nothing is refused here and the allocator has the last word.

use crate::error::{EngineError, Result};

/// Bytes of memory Linux says new allocations can get without swapping, or `None` where
/// `/proc/meminfo` cannot be read.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_available(&text)
}

/// The `MemAvailable:` line of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses `what` when it needs more than `available` bytes (`None`: unknown, allowed).
/// `what` says what needs the memory ("this model's weights", "3 candidates of up to 2,148
/// tokens"); `advice` what to change.
pub fn check_fits(what: &str, need: u64, available: Option<u64>, advice: &str) -> Result<()> {
    match available {
        Some(have) if need > have => Err(EngineError::OutOfMemory {
            what: what.to_owned(),
            need: gigabytes(need),
            have: gigabytes(have),
            advice: advice.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// [`check_fits`] against what this machine has available now.
pub fn check_fits_now(what: &str, need: u64, advice: &str) -> Result<()> {
    if need == 0 {
        return Ok(());
    }
    check_fits(what, need, available_bytes(), advice)
}

/// `bytes` as gigabytes with one decimal, rounded up for small non-zero amounts ("0.1").
fn gigabytes(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    if bytes > 0 && gb < 0.1 {
        return "0.1".into();
    }
    format!("{gb:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\n\
                       MemAvailable:   12000000 kB\nBuffers:          100 kB\n";
        assert_eq!(mem_available(meminfo), Some(12_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots kB\n"), None);
        // This machine's own answer is read, whatever it is.
        if cfg!(target_os = "linux") {
            assert!(available_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn work_beyond_what_is_available_is_refused_with_the_numbers() {
        let err = check_fits(
            "this model's weights",
            40_000_000_000,
            Some(12_345_000_000),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs ~40.0 GB"), "{err}");
        assert!(err.contains("this machine has 12.3 GB"), "{err}");
        assert!(check_fits("w", 1_000, Some(12_345_000_000), "x").is_ok());
        // Unknown memory refuses nothing.
        assert!(check_fits("w", u64::MAX, None, "x").is_ok());
        assert_eq!(gigabytes(1), "0.1");
    }
}
