//! Angles in degrees against answers in radians: `(3, 90^\circ)` and `(3, \frac{\pi}{2})`
//! are the same point. Cleaning drops degree signs (the MATH convention writes `145` for
//! `145^\circ`, and both must match), so a side written in degrees is also read in radians,
//! but only against a side that mentions π: otherwise `180^\circ` would equal `3.14159...`.

use crate::normalize::DEGREE_MARKS;

/// The pair to compare again with the degree side read in radians, if exactly one side has
/// degree signs and the other mentions π.
pub fn radians_pair(a: &str, b: &str) -> Option<(String, String)> {
    match (has_degrees(a), has_degrees(b)) {
        (true, false) if mentions_pi(b) => Some((in_radians(a)?, b.to_owned())),
        (false, true) if mentions_pi(a) => Some((a.to_owned(), in_radians(b)?)),
        _ => None,
    }
}

fn has_degrees(s: &str) -> bool {
    DEGREE_MARKS.iter().any(|m| s.contains(m))
}

fn mentions_pi(s: &str) -> bool {
    s.contains("\\pi") || s.contains('π')
}

/// `s` with every plain number followed by a degree sign (`90^\circ`, `22.5°`) written as
/// radians (`(90\pi/180)`); `None` when no sign follows a plain number.
fn in_radians(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    let mut converted = false;
    while let Some((at, mark)) = next_mark(rest) {
        let before = rest[..at].trim_end();
        let digits = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .count();
        let (head, number) = before.split_at(before.len() - digits);
        if number.chars().any(|c| c.is_ascii_digit()) {
            out.push_str(head);
            out.push_str(&format!("({number}\\pi/180)"));
            converted = true;
        } else {
            out.push_str(&rest[..at + mark.len()]);
        }
        rest = &rest[at + mark.len()..];
    }
    out.push_str(rest);
    converted.then_some(out)
}

/// The first degree sign in `s`: its byte offset and which form it is.
fn next_mark(s: &str) -> Option<(usize, &'static str)> {
    DEGREE_MARKS
        .iter()
        .filter_map(|m| s.find(m).map(|at| (at, *m)))
        // The earliest; at one offset the longest form wins.
        .min_by_key(|(at, m)| (*at, usize::MAX - m.len()))
}

#[cfg(test)]
mod tests {
    use super::{in_radians, radians_pair};

    #[test]
    fn plain_numbers_before_a_degree_sign_become_radians() {
        assert_eq!(
            in_radians(r"(3, 90^\circ)").as_deref(),
            Some(r"(3, (90\pi/180))")
        );
        assert_eq!(in_radians("22.5°").as_deref(), Some(r"(22.5\pi/180)"));
        assert_eq!(
            in_radians(r"30^{\circ}, 150{}^\circ").as_deref(),
            Some(r"(30\pi/180), (150\pi/180)")
        );
        assert_eq!(in_radians(r"x^\circ"), None);
    }

    #[test]
    fn only_a_degree_side_against_a_side_with_pi_is_reread() {
        assert!(radians_pair(r"90^\circ", r"\frac{\pi}{2}").is_some());
        assert!(radians_pair(r"\frac{\pi}{2}", r"90^\circ").is_some());
        assert!(radians_pair(r"90^\circ", "1.5707963").is_none());
        assert!(radians_pair(r"90^\circ", r"90^\circ").is_none());
    }
}
