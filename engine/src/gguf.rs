//! Opening GGUF files with errors a user can act on.
//!
//! candle's reader trusts the header; we check the magic, the architecture and that every
//! tensor lies inside the file before any weight is read, so a truncated download is reported
//! as such instead of failing halfway through loading.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};

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
        reader.rewind().map_err(|e| EngineError::io(path, e))?;
        // candle divides by the declared alignment: a zero would panic inside its reader.
        if let Some(alignment) = declared_alignment(&mut reader, file_size) {
            if !alignment.is_power_of_two() {
                return Err(EngineError::CorruptModel {
                    path: path.to_owned(),
                    reason: format!(
                        "its general.alignment is {alignment}, not a power of two; tensors \
                         cannot be located"
                    ),
                });
            }
        }
        reader.rewind().map_err(|e| EngineError::io(path, e))?;
        let content = Content::read(&mut reader).map_err(|e| header_error(path, e))?;
        let gguf = GgufFile {
            path: path.to_owned(),
            content,
            file_size,
        };
        gguf.check_tensors_inside_file()?;
        Ok(gguf)
    }

    /// Every tensor's bytes lie inside the file and start where the file's alignment says
    /// tensors start. An offset moved by one byte still lies inside the file but reads every
    /// weight shifted: garbage output with no error, unless refused here.
    fn check_tensors_inside_file(&self) -> Result<()> {
        let bad = |reason: String| EngineError::CorruptModel {
            path: self.path.clone(),
            reason,
        };
        let alignment = self.alignment();
        for (name, info) in &self.content.tensor_infos {
            if !info.offset.is_multiple_of(alignment) {
                return Err(bad(format!(
                    "tensor `{name}` starts at offset {}, which is not aligned to the file's \
                     {alignment}-byte alignment",
                    info.offset
                )));
            }
            let end = tensor_bytes(info)
                .and_then(|bytes| self.content.tensor_data_offset.checked_add(bytes))
                .and_then(|start| start.checked_add(info.offset));
            match end {
                Some(end) if end <= self.file_size => {}
                Some(end) => {
                    return Err(bad(format!(
                    "it is truncated: tensor `{name}` ends at byte {end} but the file has {} bytes",
                    self.file_size
                )))
                }
                None => {
                    return Err(bad(format!(
                        "tensor `{name}` has an impossible size or offset (shape {:?}, {:?})",
                        info.shape.dims(),
                        info.ggml_dtype
                    )))
                }
            }
        }
        Ok(())
    }

    /// `general.alignment` as candle located the tensor data by it: an 8-, 16- or 32-bit
    /// integer (checked to be a power of two on opening), else 32.
    fn alignment(&self) -> u64 {
        match self.get("general.alignment") {
            Some(
                v @ (Value::U8(_)
                | Value::I8(_)
                | Value::U16(_)
                | Value::I16(_)
                | Value::U32(_)
                | Value::I32(_)),
            ) => value_as_u64(v).filter(|a| *a > 0).unwrap_or(32),
            _ => 32,
        }
    }

    /// The bytes of all tensors: what the weights take in memory, give or take the repacking
    /// of quantized blocks.
    pub fn weight_bytes(&self) -> u64 {
        self.content
            .tensor_infos
            .values()
            .filter_map(tensor_bytes)
            .fold(0u64, u64::saturating_add)
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
            let bytes = tensor_bytes(info).unwrap_or(0);
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

/// The integer a GGUF header declares as `general.alignment` (as candle reads it: an 8-, 16-
/// or 32-bit integer), found by walking its metadata without keeping any of it: keys and
/// values are skipped, every length checked against the file. `None` where the file declares
/// none or the walk cannot finish; candle's reader then reports the damage itself.
fn declared_alignment(reader: &mut BufReader<File>, file_size: u64) -> Option<u64> {
    let mut walk = HeaderWalk {
        reader,
        file_size,
        at: 0,
    };
    walk.read(&mut [0u8; 4])?;
    let v1 = walk.u32()? == 1;
    let _tensors = walk.count(v1)?;
    let keys = walk.count(v1)?;
    let mut alignment = None;
    for _ in 0..keys {
        let len = walk.count(v1)?;
        let mut key = [0u8; 17];
        let is_alignment = if len == key.len() as u64 {
            walk.read(&mut key)?;
            &key == b"general.alignment"
        } else {
            walk.skip(len)?;
            false
        };
        let ty = walk.u32()?;
        let value = walk.value(ty, v1, 0)?;
        if is_alignment {
            alignment = value;
        }
    }
    alignment
}

/// A pass over a GGUF header that reads nothing into memory but what it is asked for.
struct HeaderWalk<'a> {
    reader: &'a mut BufReader<File>,
    file_size: u64,
    /// Bytes passed so far (the reader's position).
    at: u64,
}

impl HeaderWalk<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Option<()> {
        self.reader.read_exact(buf).ok()?;
        self.at += buf.len() as u64;
        Some(())
    }

    fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Some(u32::from_le_bytes(b))
    }

    /// A length or count: 4 bytes in GGUF v1, 8 after.
    fn count(&mut self, v1: bool) -> Option<u64> {
        if v1 {
            return self.u32().map(u64::from);
        }
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Some(u64::from_le_bytes(b))
    }

    /// Passes `bytes` without reading them (within the reader's buffer where they lie in it:
    /// a vocabulary is 150,000 short strings).
    fn skip(&mut self, bytes: u64) -> Option<()> {
        let end = self.at.checked_add(bytes)?;
        (end <= self.file_size).then_some(())?;
        self.reader.seek_relative(i64::try_from(bytes).ok()?).ok()?;
        self.at = end;
        Some(())
    }

    /// Passes one value of GGUF type `ty`: `Some(Some(n))` for a non-negative 8-, 16- or
    /// 32-bit integer, `Some(None)` for anything else, `None` where the header is broken.
    fn value(&mut self, ty: u32, v1: bool, depth: u8) -> Option<Option<u64>> {
        match ty {
            // u8, i8, u16, i16, u32, i32.
            0..=5 => {
                let width = 1usize << (ty / 2);
                let mut b = [0u8; 4];
                self.read(&mut b[..width])?;
                let raw = u32::from_le_bytes(b);
                let negative = ty % 2 == 1 && (raw >> (width * 8 - 1)) & 1 == 1;
                Some((!negative).then_some(u64::from(raw)))
            }
            8 => {
                let len = self.count(v1)?;
                self.skip(len).map(|_| None)
            }
            9 if depth < 4 => {
                let item = self.u32()?;
                let n = self.count(v1)?;
                match fixed_width(item) {
                    Some(width) => self.skip(n.checked_mul(width)?).map(|_| None),
                    None => {
                        for _ in 0..n {
                            self.value(item, v1, depth + 1)?;
                        }
                        Some(None)
                    }
                }
            }
            other => self.skip(fixed_width(other)?).map(|_| None),
        }
    }
}

/// Bytes of a GGUF value of fixed size (every type but strings and arrays).
fn fixed_width(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
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

/// The bytes of a tensor's data, or `None` where its shape overflows or does not divide into
/// whole blocks of its type.
fn tensor_bytes(info: &TensorInfo) -> Option<u64> {
    let elems = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
    let block = info.ggml_dtype.block_size() as u64;
    if !elems.is_multiple_of(block) {
        return None;
    }
    (elems / block).checked_mul(info.ggml_dtype.type_size() as u64)
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
