//! Times one forward pass over 1..=9 new positions after a 100-token context.
use candle_core::Device;
use k2_engine::loader::load_model;
use k2_engine::model::LogitsFor;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let lm = load_model(std::path::Path::new(&path), &Device::Cpu, &mut |_| {}).unwrap();
    let m = &lm.model;
    let ctx: Vec<u32> = (0..100).map(|i| 1000 + i).collect();
    for t in [1usize, 2, 4, 8, 9] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let mut c = m.new_cache(None);
            c.add_row().unwrap();
            m.forward(&mut c, &[&ctx], LogitsFor::Last).unwrap();
            let new: Vec<u32> = (0..t as u32).map(|i| 2000 + i).collect();
            let s = Instant::now();
            m.forward(&mut c, &[&new], LogitsFor::All).unwrap();
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!("t={t}: {:.1} ms", best * 1e3);
    }
}
