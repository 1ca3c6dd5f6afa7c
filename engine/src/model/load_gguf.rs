//! Building a [`Model`] from a GGUF file.
//!
//! Tensors are read one at a time into a reused buffer and handed to their final
//! representation, so loading never holds the file twice: peak memory is the model plus the
//! largest single tensor.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{Device, Tensor};

use super::config::{LinearAttention, ModelConfig, OutputGate, QkNorm};
use super::delta_net::{host_values, DeltaNet, DeltaNetWeights};
use super::kernel_op::KernelMatrix;
use super::linear::{Linear, Matrix};
use super::projections::{runs_of, stacked_bias, Projections, Stack};
use super::{Attention, Block, Mixer, Model, QkNormWeights};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;

/// Progress of a model load: `done` of `total` weight bytes read.
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress {
    pub done: u64,
    pub total: u64,
}

struct TensorReader<'a> {
    gguf: &'a GgufFile,
    file: File,
    buffer: Vec<u8>,
    device: Device,
    /// k2-kernels for quantized matrices on CPU; off only to compare against candle's.
    use_kernels: bool,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(LoadProgress),
}

impl TensorReader<'_> {
    fn has(&self, name: &str) -> bool {
        self.gguf.content.tensor_infos.contains_key(name)
    }

    /// Reads the raw bytes of `name`; returns its type and row-major dims.
    fn read_raw(&mut self, name: &str) -> Result<(GgmlDType, Vec<usize>)> {
        let gguf = self.gguf;
        let info =
            gguf.content
                .tensor_infos
                .get(name)
                .ok_or_else(|| EngineError::CorruptModel {
                    path: gguf.path.clone(),
                    reason: format!("tensor `{name}` is missing"),
                })?;
        let elems = info.shape.elem_count();
        let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        self.buffer.resize(bytes, 0);
        let start = gguf.content.tensor_data_offset + info.offset;
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut self.buffer))
            .map_err(|e| EngineError::CorruptModel {
                path: gguf.path.clone(),
                reason: format!("tensor `{name}` cannot be read ({e})"),
            })?;
        self.done += bytes as u64;
        (self.progress)(LoadProgress {
            done: self.done,
            total: self.total,
        });
        Ok((info.ggml_dtype, info.shape.dims().to_vec()))
    }

    /// A small f32 vector (norm weights, biases).
    fn vector(&mut self, name: &str) -> Result<Tensor> {
        let (dtype, dims) = self.read_raw(name)?;
        let q = qtensor_from_ggml(dtype, &self.buffer, dims, &Device::Cpu)?;
        Ok(q.dequantize(&Device::Cpu)?.to_device(&self.device)?)
    }

    fn optional_vector(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.has(name) {
            self.vector(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn matrix(&mut self, name: &str) -> Result<Arc<Matrix>> {
        let (dtype, dims) = self.read_raw(name)?;
        if dims.len() != 2 {
            return Err(EngineError::CorruptModel {
                path: self.gguf.path.clone(),
                reason: format!("tensor `{name}` should be a matrix but has shape {dims:?}"),
            });
        }
        let bytes = std::mem::take(&mut self.buffer);
        let matrix = self.matrix_from(dtype, &bytes, dims);
        self.buffer = bytes;
        matrix
    }

    /// A matrix of `dims` (`[rows, cols]`) from its raw bytes.
    fn matrix_from(&self, dtype: GgmlDType, bytes: &[u8], dims: Vec<usize>) -> Result<Arc<Matrix>> {
        if self.device.is_cpu() && self.use_kernels {
            if let Some(kernel) = KernelMatrix::from_ggml(dtype, bytes, &dims) {
                return Ok(Arc::new(Matrix::Kernel(kernel?)));
            }
        }
        let q = qtensor_from_ggml(dtype, bytes, dims, &self.device)?;
        Ok(Arc::new(Matrix::candle(q)?))
    }

    /// Refuses `name` unless it is a `[rows, cols]` matrix (a layer whose host-side arithmetic
    /// slices its outputs by these widths must not meet a file that disagrees).
    fn check_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<()> {
        let dims = self
            .gguf
            .content
            .tensor_infos
            .get(name)
            .map(|t| t.shape.dims().to_vec());
        match dims {
            Some(d) if d == [rows, cols] => Ok(()),
            Some(d) => Err(EngineError::CorruptModel {
                path: self.gguf.path.clone(),
                reason: format!(
                    "tensor `{name}` has shape {d:?}, but its sizes need {:?}",
                    [rows, cols]
                ),
            }),
            None => Err(EngineError::CorruptModel {
                path: self.gguf.path.clone(),
                reason: format!("tensor `{name}` is missing"),
            }),
        }
    }

    /// Qwen3.5's query projection, which holds each head's query and then its output gate
    /// (`2 * head_dim` rows a head): the two as separate matrices.
    fn query_and_gate(
        &mut self,
        name: &str,
        heads: usize,
        head_dim: usize,
    ) -> Result<(Linear, Linear)> {
        let (dtype, dims) = self.read_raw(name)?;
        let [rows, cols] = dims[..] else {
            return Err(EngineError::CorruptModel {
                path: self.gguf.path.clone(),
                reason: format!("tensor `{name}` should be a matrix but has shape {dims:?}"),
            });
        };
        if rows != 2 * heads * head_dim {
            return Err(EngineError::CorruptModel {
                path: self.gguf.path.clone(),
                reason: format!(
                    "tensor `{name}` has {rows} rows, not a query and a gate for {heads} heads of {head_dim}"
                ),
            });
        }
        // Rows are independent in every block format: split the raw bytes by rows.
        let row_bytes = self.buffer.len() / rows;
        let (mut query, mut gate) = (Vec::new(), Vec::new());
        for (i, head) in self.buffer.chunks_exact(row_bytes * head_dim).enumerate() {
            let half = if i % 2 == 0 { &mut query } else { &mut gate };
            half.extend_from_slice(head);
        }
        let half = vec![heads * head_dim, cols];
        Ok((
            Linear::new(self.matrix_from(dtype, &query, half.clone())?, None),
            Linear::new(self.matrix_from(dtype, &gate, half)?, None),
        ))
    }

    /// Layers reading one input: on a GPU, neighbours that share a block format and width
    /// stacked into one matrix (see `projections`); on CPU, separate.
    fn projections(&mut self, prefixes: &[String]) -> Result<Projections> {
        let separate = |reader: &mut Self| -> Result<Projections> {
            let parts = prefixes.iter().map(|p| reader.linear(p));
            Ok(Projections::separate(parts.collect::<Result<_>>()?))
        };
        if self.device.is_cpu() {
            return separate(self);
        }
        // Dims are `[out, in]`; stacking needs one format and one input width.
        let infos = &self.gguf.content.tensor_infos;
        let parts: Vec<(&String, GgmlDType, Vec<usize>)> = prefixes
            .iter()
            .filter_map(|p| {
                let info = infos.get(&format!("{p}.weight"))?;
                Some((p, info.ggml_dtype, info.shape.dims().to_vec()))
            })
            .collect();
        if parts.len() != prefixes.len() || parts.iter().any(|(_, _, dims)| dims.len() != 2) {
            return separate(self);
        }
        let runs = runs_of(parts, |(_, dtype, dims)| (*dtype, dims[1]));
        let stacks = runs
            .into_iter()
            .map(|run| self.stack(&run))
            .collect::<Result<_>>()?;
        Ok(Projections::new(stacks))
    }

    /// One matrix of the parts `run` (prefix, format, `[out, in]`), which share a format
    /// and an input width.
    fn stack(&mut self, run: &[(&String, GgmlDType, Vec<usize>)]) -> Result<Stack> {
        if let [(prefix, ..)] = run {
            return Ok(Stack::single(self.linear(prefix)?));
        }
        let (dtype, in_features) = (run[0].1, run[0].2[1]);
        let mut bytes = Vec::new();
        let mut outs = Vec::with_capacity(run.len());
        for (p, ..) in run {
            let (_, dims) = self.read_raw(&format!("{p}.weight"))?;
            bytes.extend_from_slice(&self.buffer);
            outs.push(dims[0]);
        }
        let rows: usize = outs.iter().sum();
        let q = qtensor_from_ggml(dtype, &bytes, vec![rows, in_features], &self.device)?;
        let biases = run
            .iter()
            .map(|(p, ..)| self.optional_vector(&format!("{p}.bias")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Stack {
            linear: Linear::new(Arc::new(Matrix::candle(q)?), stacked_bias(biases, &outs)?),
            outs,
        })
    }

    fn linear(&mut self, prefix: &str) -> Result<Linear> {
        let weight = self.matrix(&format!("{prefix}.weight"))?;
        let bias = self.optional_vector(&format!("{prefix}.bias"))?;
        Ok(Linear::new(weight, bias))
    }
}

/// Layer `i`'s attention.
fn attention(reader: &mut TensorReader<'_>, config: &ModelConfig, i: usize) -> Result<Attention> {
    let p = |name: &str| format!("blk.{i}.{name}");
    let qk_norm = if config.switches.qk_norm == QkNorm::None {
        None
    } else {
        let q = reader.vector(&p("attn_q_norm.weight"))?;
        let k = reader.vector(&p("attn_k_norm.weight"))?;
        Some(QkNormWeights::new(config, q, k, &reader.gguf.path)?)
    };
    let (qkv, gate) = match config.switches.output_gate {
        Some(OutputGate::Sigmoid) => {
            let (q, gate) =
                reader.query_and_gate(&p("attn_q.weight"), config.num_heads, config.head_dim)?;
            let (k, v) = (reader.linear(&p("attn_k"))?, reader.linear(&p("attn_v"))?);
            (Projections::separate(vec![q, k, v]), Some(gate))
        }
        Some(OutputGate::SoftplusBase2) => (
            reader.projections(&[p("attn_q"), p("attn_k"), p("attn_v")])?,
            Some(reader.linear(&p("attn_gate"))?),
        ),
        None => (
            reader.projections(&[p("attn_q"), p("attn_k"), p("attn_v")])?,
            None,
        ),
    };
    Ok(Attention {
        qkv,
        qk_norm,
        gate,
        o: reader.linear(&p("attn_output"))?,
    })
}

/// Layer `i`'s Gated DeltaNet, as llama.cpp's converter writes Qwen3.5 (`-exp(A_log)`, value
/// heads in tiled order).
fn delta_net(
    reader: &mut TensorReader<'_>,
    config: &ModelConfig,
    linear: &LinearAttention,
    i: usize,
) -> Result<DeltaNet> {
    let p = |name: &str| format!("blk.{i}.{name}");
    let heads = linear.value_heads;
    let shape = super::recurrent_shape(linear);
    let conv = host_values(&reader.vector(&p("ssm_conv1d.weight"))?)?;
    let dt_bias = host_values(&reader.vector(&p("ssm_dt.bias"))?)?;
    let a = host_values(&reader.vector(&p("ssm_a"))?)?;
    let norm = host_values(&reader.vector(&p("ssm_norm.weight"))?)?;
    let (hidden, values) = (config.hidden_size, heads * linear.value_dim);
    for (name, rows) in [
        ("attn_qkv", shape.channels),
        ("attn_gate", values),
        ("ssm_beta", heads),
        ("ssm_alpha", heads),
    ] {
        reader.check_matrix(&p(&format!("{name}.weight")), rows, hidden)?;
    }
    reader.check_matrix(&p("ssm_out.weight"), hidden, values)?;
    let inputs = Projections::separate(vec![
        reader.linear(&p("attn_qkv"))?,
        reader.linear(&p("attn_gate"))?,
        reader.linear(&p("ssm_beta"))?,
        reader.linear(&p("ssm_alpha"))?,
    ]);
    let out = reader.linear(&p("ssm_out"))?;
    DeltaNet::new(
        DeltaNetWeights {
            inputs,
            conv,
            dt_bias,
            a,
            norm,
            out,
        },
        linear,
        config.rms_norm_eps,
        &reader.gguf.path,
        &reader.device,
    )
}

/// Loads the weights of a GGUF model onto `device`.
pub fn load_gguf(
    gguf: &GgufFile,
    device: &Device,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Model> {
    let _uploading = super::UploadScope::enter(device);
    let config = ModelConfig::from_gguf(gguf)?;
    config.check_gguf_tensors(gguf)?;
    super::refuse_hybrid_elsewhere(&config, device)?;
    let file = File::open(&gguf.path).map_err(|e| EngineError::io(&gguf.path, e))?;
    let total = gguf
        .file_size
        .saturating_sub(gguf.content.tensor_data_offset);
    let mut reader = TensorReader {
        gguf,
        file,
        buffer: Vec::new(),
        device: device.clone(),
        use_kernels: std::env::var_os("K2_CANDLE_KERNELS").is_none(),
        done: 0,
        total,
        progress,
    };

    let embed = reader.matrix("token_embd.weight")?;
    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = |name: &str| format!("blk.{i}.{name}");
        let mixer = match &config.switches.linear_attention {
            Some(linear) if linear.is_recurrent(i) => {
                Mixer::DeltaNet(delta_net(&mut reader, &config, linear, i)?)
            }
            _ => Mixer::Attention(attention(&mut reader, &config, i)?),
        };
        // Qwen3.5's files name the norm before the MLP as transformers does.
        let mlp_norm = match reader.has(&p("post_attention_norm.weight")) {
            true => p("post_attention_norm.weight"),
            false => p("ffn_norm.weight"),
        };
        blocks.push(Block {
            attn_norm: reader.vector(&p("attn_norm.weight"))?,
            mixer,
            mlp_norm: reader.vector(&mlp_norm)?,
            gate_up: reader.projections(&[p("ffn_gate"), p("ffn_up")])?,
            down: reader.linear(&p("ffn_down"))?,
        });
    }
    let final_norm = reader.vector("output_norm.weight")?;
    // Qwen2.5's small models tie the output matrix to the embedding table.
    let lm_head = if reader.has("output.weight") {
        Linear::new(reader.matrix("output.weight")?, None)
    } else {
        Linear::new(embed.clone(), None)
    };
    tracing::info!(
        architecture = config.architecture.name(),
        layers = config.num_layers,
        "model loaded from {}",
        gguf.path.display()
    );
    Model::from_parts(config, embed, blocks, final_norm, lm_head, device)
}
