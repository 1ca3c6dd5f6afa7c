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
/// Per pass, how much the older passes' weight in the fit of pass cost decays.
const FIT_DECAY: f64 = 0.97;
/// Bounds of the acceptance a whole draft must reach to be fed: even free positions are not
/// worth a draft that is almost surely wrong, and no cost makes a sure draft not worth it.
const THRESHOLD_RANGE: (f64, f64) = (0.05, 0.9);

pub struct CostModel {
    /// Seconds of one target pass by number of drafted positions (index = drafts), measured.
    verify: Vec<Option<f64>>,
    /// Seconds per drafted token (0 for prompt lookup).
    draft_token: f64,
    /// Seconds each extra position adds to a pass, assumed until measured (from prefill).
    per_position_guess: f64,
    /// A pass's seconds against the positions it fed, all rows together.
    passes: LinearFit,
}

/// Least squares of `y = fixed + slope * x` over exponentially decaying weights.
#[derive(Default)]
struct LinearFit {
    w: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl LinearFit {
    fn record(&mut self, x: f64, y: f64) {
        for sum in [
            &mut self.w,
            &mut self.x,
            &mut self.y,
            &mut self.xx,
            &mut self.xy,
        ] {
            *sum *= FIT_DECAY;
        }
        self.w += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
    }

    /// (fixed, slope), the slope `fallback` while the passes fed too few different numbers
    /// of positions to tell; `None` before any pass.
    fn solve(&self, fallback: f64) -> Option<(f64, f64)> {
        if self.w == 0.0 {
            return None;
        }
        let (mx, my) = (self.x / self.w, self.y / self.w);
        let spread = self.xx / self.w - mx * mx;
        let slope = if spread > 0.25 {
            ((self.xy / self.w - mx * my) / spread).max(0.0)
        } else {
            fallback
        };
        Some(((my - slope * mx).max(0.0), slope))
    }
}

impl CostModel {
    /// `plain_pass`: a target pass over one position; `per_position`: the prefill's seconds
    /// per prompt token, a first guess at what each verified draft adds.
    pub fn new(max_draft: usize, draft_token: f64, per_position: f64) -> Self {
        CostModel {
            verify: vec![None; max_draft + 1],
            draft_token,
            per_position_guess: per_position,
            passes: LinearFit::default(),
        }
    }

    /// A target pass that fed `positions` positions (all rows' pending tokens and drafts).
    pub fn record_pass(&mut self, positions: usize, seconds: f64) {
        self.passes.record(positions as f64, seconds);
    }

    /// The chance of acceptance a drafted position must bring to pay for itself when `rows`
    /// rows decode together: what a position adds to a pass over what one row's token costs
    /// in a plain pass (its share of the fixed cost plus its own position). On a few CPU cores
    /// (compute-bound) that is well above one half; on a GPU at small batches, near zero.
    /// `None` until a pass has been timed.
    pub fn position_threshold(&self, rows: usize) -> Option<f64> {
        let (fixed, per_position) = self.passes.solve(self.per_position_guess)?;
        let per_token = fixed / rows.max(1) as f64 + per_position;
        let threshold = if per_token > 0.0 {
            per_position / per_token
        } else {
            0.0
        };
        Some(threshold.clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1))
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
    use super::{CostModel, THRESHOLD_RANGE};

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
    fn the_threshold_follows_the_fitted_cost_of_a_position() {
        // CPU-like: 24.5 ms a pass plus 15.35 ms a position (2 cores, the 1.5B).
        let mut m = CostModel::new(8, 0.0, 0.010);
        assert_eq!(m.position_threshold(3), None, "nothing timed yet");
        m.record_pass(3, 0.0245 + 3.0 * 0.01535);
        // One size of pass: the prefill's guess stands in for the slope, the rest is fixed.
        let guessed = m.position_threshold(3).unwrap();
        let fixed = 0.0245 + 3.0 * 0.01535 - 3.0 * 0.010;
        assert!(
            (guessed - 0.010 / (fixed / 3.0 + 0.010)).abs() < 1e-9,
            "{guessed}"
        );
        for p in [3, 5, 9, 4, 12, 3, 7] {
            m.record_pass(p, 0.0245 + p as f64 * 0.01535);
        }
        let fitted = m.position_threshold(3).unwrap();
        assert!(
            (fitted - 0.01535 / (0.0245 / 3.0 + 0.01535)).abs() < 1e-3,
            "{fitted}"
        );
        assert!(
            m.position_threshold(1).unwrap() < fitted,
            "one row shares the fixed cost less"
        );
        // GPU-like: positions nearly free.
        let mut gpu = CostModel::new(8, 0.0, 0.0);
        for p in [1, 4, 9, 2] {
            gpu.record_pass(p, 0.010 + p as f64 * 0.0001);
        }
        assert_eq!(gpu.position_threshold(1), Some(THRESHOLD_RANGE.0));
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
