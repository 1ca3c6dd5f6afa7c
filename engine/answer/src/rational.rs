//! A tiny exact rational on `i128`, so that `1/3` and `0.333` are told apart while `0.5`,
//! `1/2` and `\frac{2}{4}` agree exactly. Every operation is checked: `None` means "too big to
//! stay exact", and the caller falls back to floating point.

use std::cmp::Ordering;
use std::fmt;

/// A reduced fraction with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

/// Greatest common divisor, saturated into `i128` (only `gcd(MIN, 0)` could exceed it).
fn gcd(a: i128, b: i128) -> i128 {
    // unsigned_abs avoids the overflow of `i128::MIN.abs()`.
    let (mut x, mut y) = (a.unsigned_abs(), b.unsigned_abs());
    while y != 0 {
        (x, y) = (y, x % y);
    }
    i128::try_from(x).unwrap_or(i128::MAX)
}

impl Rational {
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    pub fn integer(n: i128) -> Self {
        Rational { num: n, den: 1 }
    }

    /// `num / den` reduced; `None` for a zero denominator or an unrepresentable result.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Rational { num: n, den: d })
    }

    pub fn numer(self) -> i128 {
        self.num
    }

    pub fn denom(self) -> i128 {
        self.den
    }

    pub fn is_integer(self) -> bool {
        self.den == 1
    }

    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Parses `123`, `2.50`, `.5`, `007` (digits and at most one point, no sign).
    pub fn parse_decimal(text: &str) -> Option<Self> {
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (text, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac = frac.trim_end_matches('0');
        let mut num: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let den = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        Rational::new(num, den)
    }

    pub fn neg(self) -> Option<Self> {
        Some(Rational {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    pub fn add(self, o: Self) -> Option<Self> {
        let g = gcd(self.den, o.den).max(1);
        let den = (self.den / g).checked_mul(o.den)?;
        let num = self
            .num
            .checked_mul(o.den / g)?
            .checked_add(o.num.checked_mul(self.den / g)?)?;
        Rational::new(num, den)
    }

    pub fn sub(self, o: Self) -> Option<Self> {
        self.add(o.neg()?)
    }

    pub fn mul(self, o: Self) -> Option<Self> {
        // Cross-reduce first so that products stay small.
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(o.num / g2)?;
        let den = (self.den / g2).checked_mul(o.den / g1)?;
        Rational::new(num, den)
    }

    pub fn recip(self) -> Option<Self> {
        Rational::new(self.den, self.num)
    }

    pub fn div(self, o: Self) -> Option<Self> {
        self.mul(o.recip()?)
    }

    /// `self^exp` for an integer exponent; `None` when it would not fit (callers bound `exp`).
    pub fn pow(self, exp: i128) -> Option<Self> {
        let base = if exp < 0 { self.recip()? } else { self };
        let mut e = exp.unsigned_abs();
        if e > 4096 {
            // Only 0, 1 and -1 survive such powers exactly; anything else overflows i128.
            return match (base.num, base.den) {
                (0, _) | (1, 1) => Some(base),
                (-1, 1) => Some(if e & 1 == 0 { Rational::ONE } else { base }),
                _ => None,
            };
        }
        let (mut acc, mut b) = (Rational::ONE, base);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(b)?;
            }
            e >>= 1;
            if e > 0 {
                b = b.mul(b)?;
            }
        }
        Some(acc)
    }

    /// The exact `n`-th root when numerator and denominator are perfect powers.
    pub fn root(self, n: u32) -> Option<Self> {
        if n == 0 {
            return None;
        }
        if self.num < 0 && n & 1 == 0 {
            return None;
        }
        let num = int_root(self.num.unsigned_abs(), n)?;
        let den = int_root(self.den.unsigned_abs(), n)?;
        let num = i128::try_from(num).ok()?;
        let num = if self.num < 0 { -num } else { num };
        Rational::new(num, i128::try_from(den).ok()?)
    }
}

/// Exact integer `n`-th root of `x`, if there is one.
fn int_root(x: u128, n: u32) -> Option<u128> {
    if x < 2 || n == 1 {
        return Some(x);
    }
    let guess = (x as f64).powf(1.0 / f64::from(n)).round();
    if !guess.is_finite() || guess < 0.0 {
        return None;
    }
    let guess = guess as u128;
    (guess.saturating_sub(1)..=guess.saturating_add(1)).find(|&r| r.checked_pow(n) == Some(x))
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_reduce_and_overflow_is_none() {
        assert_eq!(Rational::parse_decimal("2.50"), Rational::new(5, 2));
        assert_eq!(Rational::parse_decimal(".5"), Rational::new(1, 2));
        assert_eq!(Rational::parse_decimal("007"), Some(Rational::integer(7)));
        assert_eq!(Rational::parse_decimal("1".repeat(60).as_str()), None);
        assert_eq!(Rational::integer(10).pow(100), None);
        assert_eq!(Rational::integer(-1).pow(1 << 40), Some(Rational::ONE));
        assert_eq!(
            Rational::new(8, 27).and_then(|r| r.root(3)),
            Rational::new(2, 3)
        );
        assert_eq!(Rational::integer(8).root(2), None);
        assert_eq!(Rational::new(i128::MIN, -1), None);
    }
}
