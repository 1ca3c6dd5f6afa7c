//! Choosing how many tokens to draft from what drafting and verifying actually cost here.
//!
//! On a GPU at batch 1 a target pass over 8 positions costs about what one costs, so long
//! drafts pay; on a few CPU cores verification is compute-bound (measured on the 1.5B, one
//! core: 42 ms for 1 position, 148 ms for 8) and a draft-model token costs 40% of a target
//! pass, so the best draft is short, and with poor acceptance no draft at all. The model
//! measures both costs while decoding and picks the draft length with the most expected
//! tokens per second.

/// Weight of the newest measurement in each running average.
const SMOOTHING: f64 = 0.25;

pub struct CostModel {
    /// Seconds of one target pass by number of drafted positions (index = drafts), measured.
    verify: Vec<Option<f64>>,
    /// Seconds per drafted token (0 for prompt lookup).
    draft_token: f64,
    /// Seconds each extra position adds to a pass, assumed until measured (from prefill).
    per_position_guess: f64,
}

impl CostModel {
    /// `plain_pass`: a target pass over one position; `per_position`: the prefill's seconds
    /// per prompt token, a first guess at what each verified draft adds.
    pub fn new(max_draft: usize, draft_token: f64, per_position: f64) -> Self {
        CostModel {
            verify: vec![None; max_draft + 1],
            draft_token,
            per_position_guess: per_position,
        }
    }

    pub fn record_verify(&mut self, drafts: usize, seconds: f64) {
        if let Some(slot) = self.verify.get_mut(drafts) {
            *slot = Some(slot.map_or(seconds, |old| old + SMOOTHING * (seconds - old)));
        }
    }

    pub fn record_draft_token(&mut self, seconds: f64) {
        self.draft_token += SMOOTHING * (seconds - self.draft_token);
    }

    /// A pass over `drafts` drafted positions: measured, else extrapolated from the nearest
    /// measured length below it.
    fn verify_cost(&self, drafts: usize) -> Option<f64> {
        if let Some(Some(t)) = self.verify.get(drafts) {
            return Some(*t);
        }
        let below = (0..drafts.min(self.verify.len()))
            .rev()
            .find_map(|k| self.verify[k].map(|t| (k, t)));
        below.map(|(k, t)| t + (drafts - k) as f64 * self.per_position_guess)
    }

    /// The draft length (0..=`max`) with the most expected tokens per second for a row
    /// whose drafts are accepted with probability `acceptance` each. Until a plain pass has
    /// been timed, 0: that first measurement anchors every estimate.
    pub fn best_draft(&self, acceptance: f64, max: usize) -> usize {
        let a = acceptance.clamp(0.0, 0.99);
        let mut best = (0, 0.0);
        for k in 0..=max {
            let Some(verify) = self.verify_cost(k) else {
                return 0;
            };
            // Accepted run of a drafts then one target token: E = (1 - a^(k+1)) / (1 - a).
            let tokens = (1.0 - a.powi(k as i32 + 1)) / (1.0 - a);
            let rate = tokens / (verify + k as f64 * self.draft_token);
            if rate > best.1 {
                best = (k, rate);
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::CostModel;

    fn cpu_like() -> CostModel {
        // 1.5B target on one core, 0.5B draft: measured pass costs.
        let mut m = CostModel::new(8, 0.017, 0.015);
        for (k, t) in [(0, 0.042), (1, 0.053), (3, 0.086), (7, 0.148), (8, 0.169)] {
            m.record_verify(k, t);
        }
        m
    }

    #[test]
    fn compute_bound_verification_prefers_short_drafts() {
        let m = cpu_like();
        let k = m.best_draft(0.95, 8);
        assert!((1..=3).contains(&k), "k = {k}");
    }

    #[test]
    fn poor_acceptance_turns_drafting_off() {
        assert_eq!(cpu_like().best_draft(0.2, 8), 0);
    }

    #[test]
    fn free_verification_and_drafts_prefer_long_drafts() {
        let mut m = CostModel::new(8, 0.0, 0.0);
        for k in 0..=8 {
            m.record_verify(k, 0.010);
        }
        assert_eq!(m.best_draft(0.7, 8), 8);
    }

    #[test]
    fn unmeasured_lengths_extrapolate_from_below() {
        let mut m = CostModel::new(8, 0.0, 0.01);
        assert_eq!(
            m.best_draft(0.9, 8),
            0,
            "nothing measured: time a plain pass first"
        );
        m.record_verify(0, 0.04);
        // 8 drafts extrapolated at 0.04 + 8 * 0.01 = 0.12 s for ~6.1 tokens: worth it.
        assert!(m.best_draft(0.9, 8) > 4);
    }
}
