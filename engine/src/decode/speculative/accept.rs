//! The speculative sampling acceptance rule (Leviathan et al. 2023; Chen et al. 2023).
//!
//! A drafted token `d` drawn from the draft's distribution `q` is accepted with probability
//! `min(1, p(d) / q(d))`, where `p` is the target's distribution after the same processing
//! (temperature, top-k, top-p, min-p). On rejection the token is drawn from
//! `normalize(max(0, p - q))`. The accepted-or-resampled token is then distributed exactly as
//! `p`, whatever `q` is. With greedy settings both distributions are one-hot and the rule
//! reduces to "accept iff the draft equals the target's argmax, else take the argmax".

use crate::decode::sample::Distribution;

/// What the target makes of one drafted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Accept,
    /// Rejected; the target's token for this position instead.
    Replace(u32),
}

/// Checks draft token `d` (drawn from `q`) against the target's `p`. `u_accept` and
/// `u_resample` are independent uniforms in [0, 1).
pub fn check_draft(
    p: &Distribution,
    q: &Distribution,
    d: u32,
    u_accept: f32,
    u_resample: f32,
) -> Check {
    let p_d = p.prob(d);
    let q_d = q.prob(d);
    // q(d) > 0 always holds for a token drawn from q; the guard keeps a malformed draft safe.
    if q_d > 0.0 && u_accept < (p_d / q_d).min(1.0) {
        return Check::Accept;
    }
    Check::Replace(residual(p, q).map_or_else(|| p.pick(u_resample), |r| r.pick(u_resample)))
}

/// `normalize(max(0, p - q))`, or `None` when it is all zero (then `p == q` up to rounding
/// and sampling from `p` is the same thing).
fn residual(p: &Distribution, q: &Distribution) -> Option<Distribution> {
    let mut tokens = Vec::with_capacity(p.tokens.len());
    let mut probs = Vec::with_capacity(p.tokens.len());
    for (&t, &pt) in p.tokens.iter().zip(&p.probs) {
        let r = pt - q.prob(t);
        if r > 0.0 {
            tokens.push(t);
            probs.push(r);
        }
    }
    let total: f32 = probs.iter().sum();
    if total <= 0.0 {
        return None;
    }
    probs.iter_mut().for_each(|r| *r /= total);
    Some(Distribution { tokens, probs })
}

/// A distribution that puts all mass on `token`: what a deterministic drafter (prompt lookup)
/// proposes from.
pub fn one_hot(token: u32) -> Distribution {
    Distribution {
        tokens: vec![token],
        probs: vec![1.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(pairs: &[(u32, f32)]) -> Distribution {
        Distribution {
            tokens: pairs.iter().map(|p| p.0).collect(),
            probs: pairs.iter().map(|p| p.1).collect(),
        }
    }

    #[test]
    fn greedy_accepts_exactly_the_argmax() {
        let p = one_hot(7);
        assert_eq!(check_draft(&p, &one_hot(7), 7, 0.999, 0.5), Check::Accept);
        assert_eq!(check_draft(&p, &one_hot(3), 3, 0.0, 0.5), Check::Replace(7));
    }

    #[test]
    fn a_likelier_target_token_is_always_accepted() {
        let p = dist(&[(1, 0.6), (2, 0.4)]);
        let q = dist(&[(1, 0.3), (2, 0.7)]);
        assert_eq!(check_draft(&p, &q, 1, 0.9999, 0.0), Check::Accept);
    }

    #[test]
    fn rejection_resamples_from_the_positive_part_of_p_minus_q() {
        let p = dist(&[(1, 0.6), (2, 0.4)]);
        let q = dist(&[(1, 0.3), (2, 0.7)]);
        // p(2)/q(2) = 4/7: a uniform above it rejects; max(0, p - q) is all on token 1.
        for u in [0.0, 0.5, 0.99] {
            assert_eq!(check_draft(&p, &q, 2, 0.9, u), Check::Replace(1));
        }
        assert_eq!(check_draft(&p, &q, 2, 0.5, 0.0), Check::Accept);
    }
}
