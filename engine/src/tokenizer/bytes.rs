//! GPT-2's reversible byte <-> character mapping used by byte-level BPE vocabularies.
//!
//! Byte-level BPE stores every token as a string of "printable stand-ins": each byte of the
//! real text is replaced by one Unicode character so that vocabularies never contain raw
//! control bytes or spaces (a space is `Ġ`, a newline `Ċ`). Decoding maps each character of a
//! token string back to its byte.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Bytes that stand for themselves: printable Latin-1 minus the soft hyphen gap.
fn is_self_mapped(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// `byte -> char` table: self-mapped bytes keep their code point, the other 68 bytes take
/// U+0100, U+0101, ... in byte order.
pub(crate) fn byte_to_char() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            table[b as usize] = if is_self_mapped(b) {
                b as char
            } else {
                let c = char::from_u32(next).unwrap_or('\u{FFFD}');
                next += 1;
                c
            };
        }
        table
    })
}

fn char_to_byte_map() -> &'static HashMap<char, u8> {
    static MAP: OnceLock<HashMap<char, u8>> = OnceLock::new();
    MAP.get_or_init(|| {
        byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect()
    })
}

/// Appends the bytes a byte-level token string stands for. A character outside the mapping
/// (a malformed vocabulary entry) is kept as its own UTF-8 so nothing is silently dropped.
pub(crate) fn push_token_bytes(token: &str, out: &mut Vec<u8>) {
    let map = char_to_byte_map();
    for c in token.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_a_bijection_with_known_stand_ins() {
        let table = byte_to_char();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
        let distinct: std::collections::HashSet<_> = table.iter().collect();
        assert_eq!(distinct.len(), 256);
        let mut out = Vec::new();
        push_token_bytes("ĠhelloĊ", &mut out);
        assert_eq!(out, b" hello\n");
    }
}
