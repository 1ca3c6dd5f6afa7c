//! Turning logits into the next token: temperature, top-k, top-p, min-p, seeded.
//!
//! The sampler exposes the processed probability distribution, not just the chosen id:
//! speculative sampling compares the target's and the draft's distributions after identical
//! processing.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use k2_scaffold::SamplingParams;

use crate::fast_exp::exp_nonpositive;

/// A probability distribution over a subset of the vocabulary (every other token has
/// probability zero): most likely first when top-k or top-p cut it, else the whole vocabulary
/// in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub tokens: Vec<u32>,
    pub probs: Vec<f32>,
}

impl Distribution {
    pub fn prob(&self, token: u32) -> f32 {
        // The whole vocabulary in id order: the token is at its own index.
        if self.tokens.get(token as usize) == Some(&token) {
            return self.probs[token as usize];
        }
        self.tokens
            .iter()
            .position(|&t| t == token)
            .map_or(0.0, |i| self.probs[i])
    }

    /// Draws a token with `u` uniform in [0, 1).
    pub fn pick(&self, u: f32) -> u32 {
        let mut acc = 0.0;
        for (&t, &p) in self.tokens.iter().zip(&self.probs) {
            acc += p;
            if u < acc {
                return t;
            }
        }
        // Rounding can leave the running sum a hair below 1.
        self.tokens.last().copied().unwrap_or(0)
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Sampler { params, rng }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next token for `logits` (one position, the whole vocabulary).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.is_greedy() {
            return argmax(logits);
        }
        if self.params.keeps_whole_vocabulary() {
            let u = self.uniform();
            return sample_softmax(logits, self.params.temperature, u);
        }
        let dist = distribution(&self.params, logits);
        let u = self.uniform();
        dist.pick(u)
    }

    /// A uniform number in [0, 1) from this sampler's seeded stream.
    pub fn uniform(&mut self) -> f32 {
        self.rng.random::<f32>()
    }
}

/// Draws from softmax(logits / temperature) over the whole vocabulary, in id order, with `u`
/// uniform in [0, 1): the same token `distribution(..).pick(u)` gives, without building the
/// 150k-entry distribution (no sort, no allocation; a server samples every row every step).
fn sample_softmax(logits: &[f32], temperature: f32, u: f32) -> u32 {
    WEIGHTS.with(|weights| {
        let mut weights = weights.borrow_mut();
        fill_whole_vocabulary_weights(&mut weights, logits, 1.0 / temperature);
        let total = lane_sum(&weights);
        let mut acc = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            acc += w / total;
            if u < acc {
                return i as u32;
            }
        }
        // Rounding can leave the running sum a hair below 1: the last token that has any mass.
        weights
            .iter()
            .rposition(|&w| w > 0.0)
            .unwrap_or(logits.len() - 1) as u32
    })
}

/// A sum in 16 independent lanes (vector code), then the lanes as a tree. Both samplers
/// total their weights this way, so they agree to the last bit.
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0] + chunks.remainder().iter().sum::<f32>()
}

/// The most likely token; ties go to the lowest id, as in llama.cpp.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The distribution sampling draws from after temperature, top-k, top-p and min-p.
/// Greedy settings give all the mass to the argmax.
pub fn distribution(params: &SamplingParams, logits: &[f32]) -> Distribution {
    if params.is_greedy() {
        return Distribution {
            tokens: vec![argmax(logits)],
            probs: vec![1.0],
        };
    }
    let inv_t = 1.0 / params.temperature;
    // (token, weight e^((l - max) / T)) of every token still in.
    let mut kept: Vec<(u32, f32)> = if params.top_k > 0 && params.top_k < logits.len() {
        let mut sorted = top_k_weights(logits, params.top_k, inv_t);
        if params.top_p < 1.0 {
            let total: f32 = sorted.iter().map(|&(_, w)| w).sum();
            let probs = sorted.iter().map(|&(_, w)| w / total);
            let keep = smallest_prefix_reaching(probs, params.top_p);
            sorted.truncate(keep.unwrap_or(sorted.len()));
        }
        sorted
    } else {
        WEIGHTS.with(|weights| {
            let mut weights = weights.borrow_mut();
            fill_whole_vocabulary_weights(&mut weights, logits, inv_t);
            if params.top_p < 1.0 {
                let nucleus = nucleus(logits, &weights, params.top_p);
                nucleus
                    .into_iter()
                    .map(|t| (t, weights[t as usize]))
                    .collect()
            } else {
                // The whole vocabulary in id order: sorting 150k tokens would cost
                // milliseconds per row and step, for the same distribution.
                (0..).zip(weights.iter().copied()).collect()
            }
        })
    };
    if params.min_p > 0.0 {
        // Relative to the most likely token, whose weight is 1 after the max shift.
        kept.retain(|&(_, w)| w >= params.min_p);
    }
    let (tokens, weights): (Vec<u32>, Vec<f32>) = kept.into_iter().unzip();
    let sum = lane_sum(&weights);
    Distribution {
        tokens,
        probs: weights.into_iter().map(|w| w / sum).collect(),
    }
}

/// The `k` most likely tokens with their weights, most likely first.
fn top_k_weights(logits: &[f32], k: usize, inv_t: f32) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.select_nth_unstable_by(k - 1, |&a, &b| by_logit(logits, a, b));
    order.truncate(k);
    order.sort_unstable_by(|&a, &b| by_logit(logits, a, b));
    let max = logits[order[0] as usize];
    order
        .into_iter()
        .map(|t| (t, exp_nonpositive((logits[t as usize] - max) * inv_t)))
        .collect()
}

thread_local! {
    /// One vocabulary of weights per sampling thread, reused: a fresh 600 KB buffer per row
    /// and step would cost its page faults every time.
    static WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every token's weight `e^((l - max) / T)` into `weights`, in id order (vector code: one
/// pass, no gathers).
fn fill_whole_vocabulary_weights(weights: &mut Vec<f32>, logits: &[f32], inv_t: f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    weights.clear();
    weights.extend(logits.iter().map(|&l| exp_nonpositive((l - max) * inv_t)));
}

/// Most likely first; equal logits by id, so the order never depends on the sort.
fn by_logit(logits: &[f32], a: u32, b: u32) -> std::cmp::Ordering {
    logits[b as usize]
        .total_cmp(&logits[a as usize])
        .then(a.cmp(&b))
}

/// The length of the shortest prefix of `probs` whose sum, added in order, reaches `p`;
/// `None` if even the whole does not (rounding).
fn smallest_prefix_reaching(probs: impl Iterator<Item = f32>, p: f32) -> Option<usize> {
    let mut acc = 0.0;
    probs.enumerate().find_map(|(i, prob)| {
        acc += prob;
        (acc >= p).then_some(i + 1)
    })
}

/// Top-p over the whole vocabulary: the smallest set of most likely tokens whose probability
/// reaches `p`, most likely first.
///
/// The set is a prefix of the vocabulary sorted by logit, and every token of weight at least
/// `floor` comes before every lighter one: if the tokens at or above a floor already reach
/// `p`, the prefix lies among them, and only they need sorting. The floor starts where a
/// peaked distribution's nucleus ends (1e-3 of the top token) and drops a thousandfold each
/// time it is not enough, down to the whole vocabulary. Sorting all 150k tokens instead took
/// milliseconds per row and step: on the GPU, two thirds of sampled best-of-3 decoding.
fn nucleus(logits: &[f32], weights: &[f32], p: f32) -> Vec<u32> {
    let total = lane_sum(weights);
    let mut floor = 1e-3f32;
    loop {
        let mut candidates: Vec<u32> = (0..weights.len() as u32)
            .filter(|&t| weights[t as usize] >= floor)
            .collect();
        candidates.sort_unstable_by(|&a, &b| by_logit(logits, a, b));
        let probs = candidates.iter().map(|&t| weights[t as usize] / total);
        let reached = smallest_prefix_reaching(probs, p);
        match reached {
            Some(keep) => {
                candidates.truncate(keep);
                return candidates;
            }
            // Every token was a candidate: rounding kept the sum under p; all of them stay.
            None if floor == 0.0 => return candidates,
            None => floor = if floor > 1e-30 { floor * 1e-3 } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            seed: 7,
        }
    }

    #[test]
    fn greedy_picks_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        let mut s = Sampler::new(SamplingParams::greedy());
        assert_eq!(s.sample(&[0.0, 0.5, 2.0]), 2);
    }

    #[test]
    fn top_k_keeps_the_k_most_likely_in_order() {
        let d = distribution(&params(1.0, 2, 1.0, 0.0), &[1.0, 4.0, 3.0, 2.0]);
        assert_eq!(d.tokens, vec![1, 2]);
        let e = (1.0f32).exp();
        assert!((d.probs[0] - e / (e + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // softmax of ln(probs) gives back the probabilities 0.5, 0.3, 0.15, 0.05.
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let d = distribution(&params(1.0, 0, 0.8, 0.0), &logits);
        assert_eq!(d.tokens, vec![0, 1]);
        let d = distribution(&params(1.0, 0, 0.81, 0.0), &logits);
        assert_eq!(d.tokens, vec![0, 1, 2]);
    }

    #[test]
    fn min_p_drops_tokens_below_a_fraction_of_the_top() {
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let d = distribution(&params(1.0, 0, 1.0, 0.25), &logits);
        assert_eq!(d.tokens, vec![0, 1, 2]);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [2.0f32, 1.0];
        let cold = distribution(&params(0.5, 0, 1.0, 0.0), &logits);
        let hot = distribution(&params(2.0, 0, 1.0, 0.0), &logits);
        assert!(cold.probs[0] > 0.85 && hot.probs[0] < 0.65);
    }

    #[test]
    fn same_seed_same_tokens_different_seed_different_tokens() {
        let logits: Vec<f32> = (0..200).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1.0, 0, 0.95, 0.0)
            });
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    /// Top-p by sorting the whole vocabulary: what `nucleus` must give without the sort.
    fn nucleus_by_full_sort(logits: &[f32], temperature: f32, p: f32) -> Vec<u32> {
        let mut weights = Vec::new();
        fill_whole_vocabulary_weights(&mut weights, logits, 1.0 / temperature);
        let total = lane_sum(&weights);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| by_logit(logits, a, b));
        let probs = order.iter().map(|&t| weights[t as usize] / total);
        let keep = smallest_prefix_reaching(probs, p).unwrap_or(order.len());
        order.truncate(keep);
        order
    }

    #[test]
    fn top_p_sorting_only_candidates_keeps_what_a_full_sort_keeps() {
        let mut rng = StdRng::seed_from_u64(3);
        let vocab = 20_000;
        // Peaked (a few tokens hold the mass), broad (thousands needed), and heavy ties.
        for case in 0..60 {
            let scale = [0.3f32, 1.0, 3.0, 8.0][case % 4];
            let logits: Vec<f32> = (0..vocab)
                .map(|i| {
                    let noise: f32 = rng.random::<f32>() * 2.0 - 1.0;
                    let spike = if i % 997 == 0 { 6.0 } else { 0.0 };
                    let value = noise * scale + spike;
                    if case % 5 == 0 {
                        value.round()
                    } else {
                        value
                    }
                })
                .collect();
            for (temperature, p) in [(1.0, 0.95), (0.7, 0.9), (1.3, 0.5), (1.0, 0.999_99)] {
                let params = params(temperature, 0, p, 0.0);
                let fast = distribution(&params, &logits).tokens;
                let reference = nucleus_by_full_sort(&logits, temperature, p);
                assert_eq!(fast, reference, "case {case}, T {temperature}, p {p}");
            }
        }
    }

    #[test]
    fn top_p_keeps_half_of_a_flat_vocabulary() {
        let logits = vec![0.0f32; 5000];
        let d = distribution(&params(1.0, 0, 0.5, 0.0), &logits);
        assert_eq!(d.tokens.len(), 2500);
        assert!((d.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn whole_vocabulary_sampling_draws_what_the_distribution_picks() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 31) % 17) as f32 * 0.4).collect();
        let p = params(0.8, 0, 1.0, 0.0);
        let dist = distribution(&p, &logits);
        for k in 0..200 {
            let u = k as f32 / 200.0;
            assert_eq!(sample_softmax(&logits, 0.8, u), dist.pick(u), "u = {u}");
        }
    }

    #[test]
    fn lane_sum_adds_every_value() {
        let values: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        assert_eq!(lane_sum(&values), values.iter().sum::<f32>());
        assert_eq!(lane_sum(&values[..5]), 10.0);
        assert_eq!(lane_sum(&[]), 0.0);
    }

    #[test]
    fn whole_vocabulary_sampling_matches_the_distribution_on_a_real_size() {
        // 152k entries, as Qwen's vocabulary: both samplers must pick the same token for
        // every u, to the last bit of their running sums.
        let logits: Vec<f32> = (0..151_936)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 10.0)
            .collect();
        let p = params(0.7, 0, 1.0, 0.0);
        let dist = distribution(&p, &logits);
        for k in 0..64 {
            let u = k as f32 / 64.0 + 0.003;
            assert_eq!(sample_softmax(&logits, 0.7, u), dist.pick(u), "u = {u}");
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits: Vec<f32> = [0.7f32, 0.2, 0.1].iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(params(1.0, 0, 1.0, 0.0));
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[s.sample(&logits) as usize] += 1;
        }
        let freq0 = counts[0] as f32 / 20_000.0;
        assert!((freq0 - 0.7).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn invalid_settings_are_rejected_with_a_reason() {
        assert!(params(-1.0, 0, 1.0, 0.0).validate().is_err());
        assert!(params(1.0, 0, 0.0, 0.0).validate().is_err());
        assert!(params(1.0, 0, 1.0, 1.5).validate().is_err());
        assert!(params(1.0, 40, 0.95, 0.05).validate().is_ok());
    }
}
