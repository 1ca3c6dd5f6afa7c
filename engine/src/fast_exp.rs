//! `e^x` for `x <= 0`, vectorizable: softmax weights, always a value minus the largest.
//!
//! `f32::exp` is a libm call per element that the compiler cannot vectorize, and softmax takes
//! one per element: sampling, one per vocabulary entry (152k) for every row at every step;
//! decoding attention, one per cached position and query head in every layer.

/// `e^x` for `x <= 0`, within 2 ulp of the exact value.
///
/// The classic range reduction (`e^x = 2^n e^r`, `|r| <= ln 2 / 2`, ln 2 split in two
/// constants so `r` stays exact) and a degree-6 polynomial for `e^r` (Cephes' `expf`
/// coefficients), branch-free so that a loop over it compiles to vector code. Below -87,
/// where results leave f32's normal range, and for NaN, it gives 0.
#[inline]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (for |v| < 2^22).
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 0.0);
    let n = (clamped * LOG2_E + ROUND) - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n from its exponent bits; n is in [-126, 0] here.
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    // NaN fails the comparison too, so it also gives 0.
    if x >= -87.0 {
        e_r * two_n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::exp_nonpositive;

    #[test]
    fn within_two_ulp_of_the_exact_value() {
        let mut worst_ulps = 0u32;
        let mut x = -87.0f64;
        while x <= 0.0 {
            let want = (x as f32 as f64).exp() as f32;
            let got = exp_nonpositive(x as f32);
            worst_ulps = worst_ulps.max(got.to_bits().abs_diff(want.to_bits()));
            x += 0.000_731;
        }
        assert!(worst_ulps <= 2, "{worst_ulps} ulp off");
    }

    #[test]
    fn edges() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1e-30), 1.0);
        assert_eq!(exp_nonpositive(-200.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(f32::NAN), 0.0);
    }
}
