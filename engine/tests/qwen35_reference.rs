//! Qwen3.5's forward pass written out plainly in f32 from its GGUF file, against
//! transformers' logits on the same weights and llama.cpp's on the same file
//! (`tests/fixtures/qwen35/`, made by `scripts/fixtures/qwen35_fixtures.py`): the hybrid-models issue's first check of the
//! architecture as this engine reads it (GGUF names, stored w+1 norms, -exp(A_log), the tiled
//! value-head order, partial rotary embedding, the query gate, the gated delta rule of
//! `k2_engine::model::delta_rule`). The engine's own hybrid path, once built, is held to it.
//!
//! Each sequence is processed layer by layer over all its new tokens, as a prefill is: the
//! recurrent layers take the chunked delta rule over several tokens and the token-by-token one
//! over one.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::Device;
use k2_engine::gguf::GgufFile;
use k2_engine::model::delta_rule::{self, HeadDims, HeadInputs};

fn fixture_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/qwen35/{case}"))
}

/// A `[rows, cols]` matrix, row-major (GGUF `{cols, rows}`).
struct Mat {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl Mat {
    /// `W x` for a vector `x` of `cols` values.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.cols);
        self.data
            .chunks_exact(self.cols)
            .map(|row| row.iter().zip(x).map(|(w, v)| w * v).sum())
            .collect()
    }
}

struct Gguf {
    file: GgufFile,
    reader: File,
}

impl Gguf {
    fn open(path: &Path) -> Gguf {
        Gguf {
            file: GgufFile::open(path).unwrap(),
            reader: File::open(path).unwrap(),
        }
    }

    fn u(&self, key: &str) -> usize {
        self.file.get_u64(&format!("qwen35.{key}")).unwrap() as usize
    }

    fn values(&mut self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let q = self
            .file
            .content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = q.dequantize(&Device::Cpu).unwrap();
        let dims = t.dims().to_vec();
        (t.flatten_all().unwrap().to_vec1().unwrap(), dims)
    }

    fn vector(&mut self, name: &str) -> Vec<f32> {
        self.values(name).0
    }

    fn matrix(&mut self, name: &str) -> Mat {
        let (data, dims) = self.values(name);
        let (rows, cols) = match dims[..] {
            [rows, cols] => (rows, cols),
            _ => panic!("{name} is not a matrix: {dims:?}"),
        };
        Mat { data, rows, cols }
    }
}

struct Attention {
    q: Mat,
    k: Mat,
    v: Mat,
    o: Mat,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
}

struct DeltaNet {
    qkv: Mat,
    z: Mat,
    alpha: Mat,
    beta: Mat,
    /// `[channels, taps]`, the last tap on the newest input.
    conv: Mat,
    dt_bias: Vec<f32>,
    /// `-exp(A_log)`, per value head.
    a: Vec<f32>,
    norm: Vec<f32>,
    out: Mat,
}

enum Mixer {
    Attention(Attention),
    DeltaNet(DeltaNet),
}

struct Layer {
    attn_norm: Vec<f32>,
    mlp_norm: Vec<f32>,
    mixer: Mixer,
    gate: Mat,
    up: Mat,
    down: Mat,
}

struct Sizes {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rotary: usize,
    key_heads: usize,
    value_heads: usize,
    head: HeadDims,
    taps: usize,
    eps: f32,
    theta: f32,
}

struct Qwen35 {
    sizes: Sizes,
    embed: Mat,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    output: Option<Mat>,
}

/// What a sequence carries between passes, per layer.
enum LayerState {
    /// Keys and values of every position, `[kv_heads * head_dim]` each.
    Attention {
        keys: Vec<Vec<f32>>,
        values: Vec<Vec<f32>>,
    },
    /// The last `taps - 1` conv inputs (oldest first) and each value head's delta-rule state.
    Recurrent {
        conv: Vec<Vec<f32>>,
        delta: Vec<f32>,
    },
}

impl Qwen35 {
    fn load(path: &Path) -> Qwen35 {
        let mut g = Gguf::open(path);
        let recurrent: Vec<bool> = (0..g.u("block_count"))
            .map(|i| (i + 1) % g.u("full_attention_interval") != 0)
            .collect();
        let sizes = Sizes {
            heads: g.u("attention.head_count"),
            kv_heads: g.u("attention.head_count_kv"),
            head_dim: g.u("attention.key_length"),
            rotary: g.u("rope.dimension_count"),
            key_heads: g.u("ssm.group_count"),
            value_heads: g.u("ssm.time_step_rank"),
            head: HeadDims {
                key_dim: g.u("ssm.state_size"),
                value_dim: g.u("ssm.inner_size") / g.u("ssm.time_step_rank"),
            },
            taps: g.u("ssm.conv_kernel"),
            eps: g
                .file
                .get_f64("qwen35.attention.layer_norm_rms_epsilon")
                .unwrap() as f32,
            theta: g.file.get_f64("qwen35.rope.freq_base").unwrap() as f32,
        };
        let layers = recurrent
            .iter()
            .enumerate()
            .map(|(i, &recurrent)| {
                let b = |name: &str| format!("blk.{i}.{name}");
                let mixer = if recurrent {
                    Mixer::DeltaNet(DeltaNet {
                        qkv: g.matrix(&b("attn_qkv.weight")),
                        z: g.matrix(&b("attn_gate.weight")),
                        alpha: g.matrix(&b("ssm_alpha.weight")),
                        beta: g.matrix(&b("ssm_beta.weight")),
                        conv: g.matrix(&b("ssm_conv1d.weight")),
                        dt_bias: g.vector(&b("ssm_dt.bias")),
                        a: g.vector(&b("ssm_a")),
                        norm: g.vector(&b("ssm_norm.weight")),
                        out: g.matrix(&b("ssm_out.weight")),
                    })
                } else {
                    Mixer::Attention(Attention {
                        q: g.matrix(&b("attn_q.weight")),
                        k: g.matrix(&b("attn_k.weight")),
                        v: g.matrix(&b("attn_v.weight")),
                        o: g.matrix(&b("attn_output.weight")),
                        q_norm: g.vector(&b("attn_q_norm.weight")),
                        k_norm: g.vector(&b("attn_k_norm.weight")),
                    })
                };
                Layer {
                    attn_norm: g.vector(&b("attn_norm.weight")),
                    mlp_norm: g.vector(&b("post_attention_norm.weight")),
                    mixer,
                    gate: g.matrix(&b("ffn_gate.weight")),
                    up: g.matrix(&b("ffn_up.weight")),
                    down: g.matrix(&b("ffn_down.weight")),
                }
            })
            .collect();
        let has_output = g.file.content.tensor_infos.contains_key("output.weight");
        Qwen35 {
            sizes,
            embed: g.matrix("token_embd.weight"),
            layers,
            final_norm: g.vector("output_norm.weight"),
            output: has_output.then(|| g.matrix("output.weight")),
        }
    }

    fn new_state(&self) -> Vec<LayerState> {
        let s = &self.sizes;
        self.layers
            .iter()
            .map(|layer| match &layer.mixer {
                Mixer::Attention(_) => LayerState::Attention {
                    keys: Vec::new(),
                    values: Vec::new(),
                },
                Mixer::DeltaNet(d) => LayerState::Recurrent {
                    conv: vec![vec![0.0; d.conv.rows]; s.taps - 1],
                    delta: vec![0.0; s.value_heads * s.head.key_dim * s.head.value_dim],
                },
            })
            .collect()
    }

    /// Logits after each of `tokens`, appended to the sequence `state` holds.
    fn forward(&self, tokens: &[u32], state: &mut [LayerState]) -> Vec<Vec<f32>> {
        let eps = self.sizes.eps;
        let mut x: Vec<Vec<f32>> = tokens
            .iter()
            .map(|&t| {
                let cols = self.embed.cols;
                self.embed.data[t as usize * cols..][..cols].to_vec()
            })
            .collect();
        for (layer, layer_state) in self.layers.iter().zip(state.iter_mut()) {
            let h: Vec<Vec<f32>> = x
                .iter()
                .map(|r| rms_norm(r, &layer.attn_norm, eps))
                .collect();
            let mixed = match (&layer.mixer, layer_state) {
                (Mixer::Attention(a), LayerState::Attention { keys, values }) => {
                    self.attention(a, &h, keys, values)
                }
                (Mixer::DeltaNet(d), LayerState::Recurrent { conv, delta }) => {
                    self.delta_net(d, &h, conv, delta)
                }
                _ => unreachable!("a layer's state is of its own kind"),
            };
            for (xr, m) in x.iter_mut().zip(&mixed) {
                add(xr, m);
            }
            for xr in x.iter_mut() {
                let h = rms_norm(xr, &layer.mlp_norm, eps);
                let (gate, up) = (layer.gate.apply(&h), layer.up.apply(&h));
                let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| silu(*g) * u).collect();
                add(xr, &layer.down.apply(&act));
            }
        }
        let head = self.output.as_ref().unwrap_or(&self.embed);
        x.iter()
            .map(|r| head.apply(&rms_norm(r, &self.final_norm, eps)))
            .collect()
    }

    fn attention(
        &self,
        a: &Attention,
        h: &[Vec<f32>],
        keys: &mut Vec<Vec<f32>>,
        values: &mut Vec<Vec<f32>>,
    ) -> Vec<Vec<f32>> {
        let s = &self.sizes;
        let hd = s.head_dim;
        let group = s.heads / s.kv_heads;
        let mut out = Vec::with_capacity(h.len());
        for hr in h {
            let pos = keys.len();
            let q2 = a.q.apply(hr);
            let mut k = a.k.apply(hr);
            let v = a.v.apply(hr);
            // Per head: the query, then the gate.
            let mut q: Vec<f32> = Vec::with_capacity(s.heads * hd);
            let mut gate: Vec<f32> = Vec::with_capacity(s.heads * hd);
            for head in q2.chunks_exact(2 * hd) {
                q.extend(rms_norm(&head[..hd], &a.q_norm, s.eps));
                gate.extend_from_slice(&head[hd..]);
            }
            for head in k.chunks_exact_mut(hd) {
                let normed = rms_norm(head, &a.k_norm, s.eps);
                head.copy_from_slice(&normed);
            }
            for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                rotate_partial(head, pos, s.rotary, s.theta);
            }
            keys.push(k);
            values.push(v);
            let mut o = vec![0f32; s.heads * hd];
            for head in 0..s.heads {
                let kv = head / group;
                let qh = &q[head * hd..][..hd];
                let scores: Vec<f32> = keys
                    .iter()
                    .map(|k| dot(qh, &k[kv * hd..][..hd]) / (hd as f32).sqrt())
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = weights.iter().sum();
                let oh = &mut o[head * hd..][..hd];
                for (w, v) in weights.iter().zip(values.iter()) {
                    for (oj, vj) in oh.iter_mut().zip(&v[kv * hd..][..hd]) {
                        *oj += w / total * vj;
                    }
                }
            }
            for (oj, g) in o.iter_mut().zip(&gate) {
                *oj *= sigmoid(*g);
            }
            out.push(a.o.apply(&o));
        }
        out
    }

    fn delta_net(
        &self,
        d: &DeltaNet,
        h: &[Vec<f32>],
        conv_state: &mut Vec<Vec<f32>>,
        delta: &mut [f32],
    ) -> Vec<Vec<f32>> {
        let s = &self.sizes;
        let (kh, vh) = (s.key_heads, s.value_heads);
        let (dk, dv) = (s.head.key_dim, s.head.value_dim);
        let t_len = h.len();
        // The causal depthwise conv over the q/k/v channels, its state in front, then SiLU.
        let inputs: Vec<Vec<f32>> = h.iter().map(|r| d.qkv.apply(r)).collect();
        let mut window: Vec<Vec<f32>> = conv_state.clone();
        window.extend(inputs.iter().cloned());
        let mixed: Vec<Vec<f32>> = (0..t_len)
            .map(|t| {
                (0..d.conv.rows)
                    .map(|c| {
                        let taps = &d.conv.data[c * s.taps..][..s.taps];
                        let sum: f32 = (0..s.taps).map(|j| taps[j] * window[t + j][c]).sum();
                        silu(sum)
                    })
                    .collect()
            })
            .collect();
        *conv_state = window[window.len() - (s.taps - 1)..].to_vec();

        let z: Vec<Vec<f32>> = h.iter().map(|r| d.z.apply(r)).collect();
        let beta: Vec<Vec<f32>> = h
            .iter()
            .map(|r| d.beta.apply(r).into_iter().map(sigmoid).collect())
            .collect();
        let g: Vec<Vec<f32>> = h
            .iter()
            .map(|r| {
                let alpha = d.alpha.apply(r);
                (0..vh)
                    .map(|p| softplus(alpha[p] + d.dt_bias[p]) * d.a[p])
                    .collect()
            })
            .collect();
        let mut out_heads = vec![vec![0f32; vh * dv]; t_len];
        for p in 0..vh {
            // llama.cpp's tiled order: GGUF value head p reads key head p % K.
            let key_head = p % kh;
            let column = |offset: usize, width: usize| -> Vec<f32> {
                mixed
                    .iter()
                    .flat_map(|m| m[offset..][..width].to_vec())
                    .collect()
            };
            let mut q = column(key_head * dk, dk);
            let mut k = column(kh * dk + key_head * dk, dk);
            let v = column(2 * kh * dk + p * dv, dv);
            delta_rule::normalize_queries_and_keys(&mut q, &mut k, dk);
            let (gp, bp): (Vec<f32>, Vec<f32>) = (0..t_len).map(|t| (g[t][p], beta[t][p])).unzip();
            let x = HeadInputs {
                q: &q,
                k: &k,
                v: &v,
                g: &gp,
                beta: &bp,
            };
            let state = &mut delta[p * dk * dv..][..dk * dv];
            let mut o = vec![0f32; t_len * dv];
            if t_len == 1 {
                delta_rule::recurrent(state, s.head, &x, &mut o);
            } else {
                delta_rule::chunked(state, s.head, &x, 64, &mut o);
            }
            for t in 0..t_len {
                // The gated norm: RMS over the head, its weight as stored, times SiLU(z).
                let normed = rms_norm(&o[t * dv..][..dv], &d.norm, s.eps);
                let zt = &z[t][p * dv..][..dv];
                for (j, value) in normed.iter().enumerate() {
                    out_heads[t][p * dv + j] = value * silu(zt[j]);
                }
            }
        }
        out_heads.iter().map(|o| d.out.apply(o)).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let scale = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * scale * w).collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// NEOX rotation of the first `rotary` dimensions of one head (pairs `i`, `i + rotary/2`);
/// the rest pass through. Text positions give every section of Qwen3.5's interleaved
/// multi-section rotary embedding the same position, which makes it exactly this.
fn rotate_partial(head: &mut [f32], pos: usize, rotary: usize, theta: f32) {
    let half = rotary / 2;
    for i in 0..half {
        let freq = theta.powf(-((2 * i) as f32) / rotary as f32);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * cos - b * sin;
        head[i + half] = b * cos + a * sin;
    }
}

fn read_logits(dir: &Path, file: &str, vocab: usize) -> Vec<Vec<f32>> {
    let values: Vec<f32> = std::fs::read(dir.join(file))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    values.chunks_exact(vocab).map(<[f32]>::to_vec).collect()
}

/// The case's tokens, and the logits of transformers (on the Hugging Face weights) and of
/// llama.cpp (on the F32 GGUF file) after each of them.
fn case_tokens_and_references(case: &str) -> (Vec<u32>, [Vec<Vec<f32>>; 2]) {
    let dir = fixture_dir(case);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let tokens: Vec<u32> = meta["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let vocab = meta["vocab"].as_u64().unwrap() as usize;
    let references = [
        read_logits(&dir, "reference-transformers.f32", vocab),
        read_logits(&dir, "reference-llamacpp-f32.f32", vocab),
    ];
    (tokens, references)
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

const CASES: [&str; 2] = ["qwen35-hybrid-k2-v4", "qwen35-tied-k2-v2"];

#[test]
fn qwen35_gguf_prefill_matches_transformers_and_llama_cpp() {
    for case in CASES {
        let model = Qwen35::load(&fixture_dir(case).join("model-f32.gguf"));
        let (tokens, references) = case_tokens_and_references(case);
        let logits = model.forward(&tokens, &mut model.new_state());
        // Logits reach about 4.5; a wrong value-head order puts them 5 apart.
        for (name, reference) in ["transformers", "llama.cpp"].iter().zip(&references) {
            let err = max_abs_diff(&logits, reference);
            assert!(err < 1e-4, "{case} against {name}: {err}");
        }
    }
}

#[test]
fn qwen35_decoding_token_by_token_continues_a_prefill_exactly() {
    for case in CASES {
        let model = Qwen35::load(&fixture_dir(case).join("model-f32.gguf"));
        let (tokens, [reference, _]) = case_tokens_and_references(case);
        let mut state = model.new_state();
        let split = 50;
        let mut logits = model.forward(&tokens[..split], &mut state);
        for &t in &tokens[split..] {
            logits.extend(model.forward(&[t], &mut state));
        }
        let err = max_abs_diff(&logits, &reference);
        assert!(err < 1e-4, "{case}: {err}");
    }
}
