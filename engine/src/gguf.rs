//! Opening GGUF files with errors a user can act on.
//!
//! candle's reader trusts the header; we check the magic, the architecture and that every
//! tensor lies inside the file before any weight is read, so a truncated download is reported
//! as such instead of failing halfway through loading.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{EngineError, Result};

/// Magic bytes at the start of every GGUF file ("GGUF" little-endian).
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// A parsed GGUF header: metadata and tensor directory, no weights.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub file_size: u64,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
        let file_size = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
            return Err(EngineError::NotAModel {
                path: path.to_owned(),
                reason: "it does not start with the GGUF magic bytes".into(),
            });
        }
        let mut file = reader.into_inner();
        use std::io::Seek;
        file.rewind().map_err(|e| EngineError::io(path, e))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| header_error(path, e))?;
        let gguf = GgufFile {
            path: path.to_owned(),
            content,
            file_size,
        };
        gguf.check_tensors_inside_file()?;
        Ok(gguf)
    }

    fn check_tensors_inside_file(&self) -> Result<()> {
        for (name, info) in &self.content.tensor_infos {
            // Sizes from the header are untrusted: checked, so a huge shape or offset is
            // reported instead of wrapping past the check below (found by fuzzing).
            let end = info
                .shape
                .dims()
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .and_then(|elems| {
                    (elems / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
                })
                .and_then(|bytes| {
                    self.content
                        .tensor_data_offset
                        .checked_add(info.offset)?
                        .checked_add(bytes as u64)
                });
            let Some(end) = end else {
                return Err(EngineError::CorruptModel {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}` has an impossible size or offset"),
                });
            };
            if end > self.file_size {
                return Err(EngineError::CorruptModel {
                    path: self.path.clone(),
                    reason: format!(
                        "it is truncated: tensor `{name}` ends at byte {end} but the file has {} bytes",
                        self.file_size
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(value_as_u64)
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::F32(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            other => value_as_u64(other).map(|v| v as f64),
        }
    }

    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key).ok_or_else(|| self.missing(key))
    }

    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key).ok_or_else(|| self.missing(key))
    }

    pub fn missing(&self, key: &str) -> EngineError {
        EngineError::MissingMetadata {
            path: self.path.clone(),
            what: format!("metadata key `{key}`"),
        }
    }

    pub fn architecture(&self) -> Result<&str> {
        self.require_str("general.architecture")
    }

    /// The quantization that covers most of the weight bytes, e.g. "Q4_K".
    pub fn dominant_quantization(&self) -> String {
        let mut bytes_by_type: std::collections::BTreeMap<String, u64> = Default::default();
        for info in self.content.tensor_infos.values() {
            let elems = info.shape.elem_count();
            let bytes = (elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size()) as u64;
            *bytes_by_type
                .entry(format!("{:?}", info.ggml_dtype))
                .or_default() += bytes;
        }
        bytes_by_type
            .into_iter()
            .max_by_key(|(_, b)| *b)
            .map(|(t, _)| t.to_uppercase())
            .unwrap_or_else(|| "none".into())
    }

    /// Human name of the file's quantization scheme: the `general.file_type` when known,
    /// else the dominant tensor type.
    pub fn quantization_label(&self) -> String {
        let by_file_type = self.get_u64("general.file_type").and_then(file_type_name);
        by_file_type
            .map(str::to_owned)
            .unwrap_or_else(|| self.dominant_quantization())
    }
}

/// candle reports a tensor type it does not know as "unknown dtype for tensor N": that is a
/// newer quantization (IQ2_XXS, ...), not a damaged file, and deserves its own message.
fn header_error(path: &Path, e: candle_core::Error) -> EngineError {
    let message = e.to_string();
    if let Some(code) = message
        .split("unknown dtype for tensor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
    {
        return EngineError::UnsupportedQuantization {
            path: path.to_owned(),
            tensor: "(a weight tensor)".into(),
            quant: format!("GGML type {code} ({})", ggml_type_name(code)),
            supported: SUPPORTED_QUANTIZATIONS.into(),
        };
    }
    EngineError::CorruptModel {
        path: path.to_owned(),
        reason: format!("the GGUF header cannot be read ({message})"),
    }
}

pub const SUPPORTED_QUANTIZATIONS: &str =
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

fn ggml_type_name(code: &str) -> &'static str {
    match code {
        "16" => "IQ2_XXS",
        "17" => "IQ2_XS",
        "18" => "IQ3_XXS",
        "19" => "IQ1_S",
        "20" => "IQ4_NL",
        "21" => "IQ3_S",
        "22" => "IQ2_S",
        "23" => "IQ4_XS",
        "29" => "IQ1_M",
        "34" => "TQ1_0",
        "35" => "TQ2_0",
        _ => "unknown",
    }
}

fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(v) => Some(*v as u64),
        Value::I8(v) => u64::try_from(*v).ok(),
        Value::U16(v) => Some(*v as u64),
        Value::I16(v) => u64::try_from(*v).ok(),
        Value::U32(v) => Some(*v as u64),
        Value::I32(v) => u64::try_from(*v).ok(),
        Value::U64(v) => Some(*v),
        Value::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// llama.cpp's `llama_ftype` numbering, as written by its converters into `general.file_type`.
fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}
