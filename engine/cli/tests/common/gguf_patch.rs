//! Edits the metadata and tensor directory of a real GGUF file and writes a corrupted copy,
//! the tensor data copied byte for byte: tests damage one setting of a known-good model and
//! check what `k2` makes of it.
//!
//! GGUF v2/v3 layout: magic, version (u32), tensor count and key count (u64), the keys (a
//! string, a u32 type, a value), the tensor directory (name, dims, type, offset from the data
//! start), padding to `general.alignment`, the data.

use std::path::Path;

/// GGUF value types, by their numbers in the format.
const U32: u32 = 4;
const F32: u32 = 6;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;

pub struct GgufPatch {
    version: u32,
    /// Each key with its value's raw bytes (type number first).
    metadata: Vec<(String, Vec<u8>)>,
    tensors: Vec<TensorEntry>,
    data: Vec<u8>,
}

struct TensorEntry {
    name: String,
    /// Dims and type, as stored.
    shape_and_type: Vec<u8>,
    offset: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let len = self.u64() as usize;
        String::from_utf8(self.take(len).to_vec()).unwrap()
    }
    /// Skips one value of type `ty`.
    fn skip_value(&mut self, ty: u32) {
        match ty {
            0 | 1 | 7 => {
                self.take(1);
            }
            2 | 3 => {
                self.take(2);
            }
            4..=6 => {
                self.take(4);
            }
            10..=12 => {
                self.take(8);
            }
            STRING => {
                self.string();
            }
            ARRAY => {
                let item = self.u32();
                for _ in 0..self.u64() {
                    self.skip_value(item);
                }
            }
            other => panic!("unknown GGUF value type {other}"),
        }
    }
}

fn string_bytes(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl GgufPatch {
    pub fn read(path: &Path) -> GgufPatch {
        let bytes = std::fs::read(path).unwrap();
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        assert_eq!(c.take(4), b"GGUF");
        let version = c.u32();
        assert!(version >= 2, "GGUF v{version} is not supported here");
        let (tensor_count, key_count) = (c.u64(), c.u64());
        let mut metadata = Vec::new();
        for _ in 0..key_count {
            let key = c.string();
            let start = c.at;
            let ty = c.u32();
            c.skip_value(ty);
            metadata.push((key, bytes[start..c.at].to_vec()));
        }
        let mut tensors = Vec::new();
        for _ in 0..tensor_count {
            let name = c.string();
            let start = c.at;
            let dims = c.u32();
            c.take(8 * dims as usize + 4);
            let shape_and_type = bytes[start..c.at].to_vec();
            tensors.push(TensorEntry {
                name,
                shape_and_type,
                offset: c.u64(),
            });
        }
        let mut patch = GgufPatch {
            version,
            metadata,
            tensors,
            data: Vec::new(),
        };
        let data_start = c.at.next_multiple_of(patch.alignment());
        patch.data = bytes[data_start..].to_vec();
        patch
    }

    fn alignment(&self) -> usize {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .map(|(_, v)| u32::from_le_bytes(v[4..8].try_into().unwrap()) as usize)
            .filter(|&a| a > 0)
            .unwrap_or(32)
    }

    fn set_raw(&mut self, key: &str, raw: Vec<u8>) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = raw,
            None => self.metadata.push((key.to_owned(), raw)),
        }
        self
    }

    pub fn set_u32(&mut self, key: &str, value: u32) -> &mut Self {
        let mut raw = U32.to_le_bytes().to_vec();
        raw.extend_from_slice(&value.to_le_bytes());
        self.set_raw(key, raw)
    }

    pub fn set_u64(&mut self, key: &str, value: u64) -> &mut Self {
        let mut raw = U64.to_le_bytes().to_vec();
        raw.extend_from_slice(&value.to_le_bytes());
        self.set_raw(key, raw)
    }

    pub fn set_f32(&mut self, key: &str, value: f32) -> &mut Self {
        let mut raw = F32.to_le_bytes().to_vec();
        raw.extend_from_slice(&value.to_le_bytes());
        self.set_raw(key, raw)
    }

    pub fn set_str(&mut self, key: &str, value: &str) -> &mut Self {
        let mut raw = STRING.to_le_bytes().to_vec();
        raw.extend(string_bytes(value));
        self.set_raw(key, raw)
    }

    /// The string stored under `key`, if it holds one.
    pub fn get_str(&self, key: &str) -> Option<String> {
        let (_, raw) = self.metadata.iter().find(|(k, _)| k == key)?;
        if u32::from_le_bytes(raw[..4].try_into().unwrap()) != STRING {
            return None;
        }
        let len = u64::from_le_bytes(raw[4..12].try_into().unwrap()) as usize;
        Some(String::from_utf8(raw[12..12 + len].to_vec()).unwrap())
    }

    /// Moves where the directory says tensor `name` starts by `delta` bytes.
    pub fn shift_tensor(&mut self, name: &str, delta: i64) -> &mut Self {
        let entry = self.tensors.iter_mut().find(|t| t.name == name).unwrap();
        entry.offset = entry.offset.checked_add_signed(delta).unwrap();
        self
    }

    pub fn write(&self, path: &Path) {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, raw) in &self.metadata {
            out.extend(string_bytes(key));
            out.extend_from_slice(raw);
        }
        for t in &self.tensors {
            out.extend(string_bytes(&t.name));
            out.extend_from_slice(&t.shape_and_type);
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(self.alignment()), 0);
        out.extend_from_slice(&self.data);
        std::fs::write(path, out).unwrap();
    }
}
