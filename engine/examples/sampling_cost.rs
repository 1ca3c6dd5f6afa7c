//! Time of one whole-vocabulary sample (temperature only, the server's usual request).
use k2_engine::decode::sample::{Sampler, SamplingParams};
use std::time::Instant;

fn main() {
    let vocab = 151_936;
    let logits: Vec<f32> = (0..vocab)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 10.0)
        .collect();
    let mut s = Sampler::new(SamplingParams {
        temperature: 0.7,
        top_p: 1.0,
        top_k: 0,
        ..SamplingParams::default()
    });
    let n = 400;
    let started = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum += u64::from(s.sample(&logits));
    }
    let each = started.elapsed().as_secs_f64() / n as f64;
    println!("{:.3} ms per sample ({sum})", each * 1e3);
}
