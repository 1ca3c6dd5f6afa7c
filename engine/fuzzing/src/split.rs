//! Several inputs from one fuzz input.

/// `data` cut at NUL bytes into at most `max` parts (the last keeps any further NULs), so one
/// byte string can carry a template and its tokens, or two answers to compare.
pub fn split_parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    data.splitn(max.max(1), |&b| b == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_nul_up_to_max() {
        assert_eq!(split_parts(b"a\0b\0c", 2), vec![&b"a"[..], &b"b\0c"[..]]);
        assert_eq!(split_parts(b"", 3), vec![&b""[..]]);
        assert_eq!(split_parts(b"x", 0), vec![&b"x"[..]]);
    }
}
