//! Helpers shared by the GPU examples (`device_bench`, `batching_probe`, `hybrid_check`):
//! one-row reference decoding, the ways logits are compared, and timing against the copy
//! bandwidth.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use k2_engine::model::{Architecture, KvCache, LogitsFor, Model, ModelConfig, RopeStyle};

pub fn cache_with_rows(model: &Model, rows: usize, max_len: usize) -> Result<KvCache> {
    let mut cache = model.new_cache(Some(max_len));
    for _ in 0..rows {
        cache.add_row()?;
    }
    Ok(cache)
}

pub fn to_cpu_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?)
}

/// ‖a − b‖ / ‖b‖ (infinite when the lengths differ or `a` holds a non-finite value).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let (mut diff, mut norm) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        diff += ((x - y) as f64).powi(2);
        norm += (*y as f64).powi(2);
    }
    (diff / norm.max(1e-30)).sqrt()
}

pub fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0 as u32
}

/// Logits after the prompt and after each of `steps` greedy tokens, and those tokens.
pub fn greedy(model: &Model, prompt: &[u32], steps: usize) -> Result<(Vec<Vec<f32>>, Vec<u32>)> {
    let mut cache = cache_with_rows(model, 1, prompt.len() + steps + 1)?;
    let mut logits = vec![to_cpu_f32(
        &model.forward(&mut cache, &[prompt], LogitsFor::Last)?[0],
    )?];
    let mut chosen = Vec::new();
    for _ in 0..steps {
        let next = argmax(logits.last().expect("one logits row"));
        chosen.push(next);
        logits.push(to_cpu_f32(
            &model.forward(&mut cache, &[&[next]], LogitsFor::Last)?[0],
        )?);
    }
    Ok((logits, chosen))
}

/// Logits after the prompt and after each of `forced`, fed one by one to a row alone.
pub fn teacher_forced(model: &Model, prompt: &[u32], forced: &[u32]) -> Result<Vec<Vec<f32>>> {
    let mut cache = cache_with_rows(model, 1, prompt.len() + forced.len() + 1)?;
    let mut logits = vec![to_cpu_f32(
        &model.forward(&mut cache, &[prompt], LogitsFor::Last)?[0],
    )?];
    for &t in forced {
        logits.push(to_cpu_f32(
            &model.forward(&mut cache, &[&[t]], LogitsFor::Last)?[0],
        )?);
    }
    Ok(logits)
}

/// Qwen2.5(-Coder)-1.5B's geometry (our published solver model) with `layers` layers.
pub fn qwen25_15b(layers: usize) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Qwen2,
        vocab_size: 151936,
        hidden_size: 1536,
        intermediate_size: 8960,
        num_layers: layers,
        num_heads: 12,
        num_kv_heads: 2,
        head_dim: 128,
        rope_theta: 1_000_000.0,
        rope_style: RopeStyle::Halves,
        rms_norm_eps: 1e-6,
        context_length: 32768,
        switches: Default::default(),
    }
}

/// Device-to-device copy of 2 GiB of random data into a buffer allocated once (the driver's
/// copy, as `cudaMemcpy` does it), counting bytes read plus bytes written (GB/s): the
/// ceiling decode speed is held against.
pub fn copy_bandwidth(device: &Device) -> Result<f64> {
    let elems = 1usize << 29;
    let src = Tensor::rand(0f32, 1f32, elems, device)?;
    let ms = match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(dev) => {
            let (store, _) = src.storage_and_layout();
            let candle_core::Storage::Cuda(cs) = &*store else {
                anyhow::bail!("not a CUDA tensor")
            };
            let from = cs.as_cuda_slice::<f32>()?;
            let mut to = dev.alloc_zeros::<f32>(elems)?;
            time_ms(device, 20, || Ok(dev.memcpy_dtod(from, &mut to)?))?
        }
        _ => {
            let dst = Tensor::zeros(elems, DType::F32, device)?;
            time_ms(device, 20, || Ok(dst.slice_set(&src, 0, 0)?))?
        }
    };
    Ok(2.0 * (elems * 4) as f64 / (ms / 1e3) / 1e9)
}

/// Milliseconds of `f` per call, median of `reps` after one warm-up, device synchronized.
pub fn time_ms(device: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    device.synchronize()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
