//! Deciding whether two cleaned answers mean the same thing, and the canonical key used for
//! grouping. Rules (documented here because graders differ on them):
//!
//! - Both sides rational (integers, decimals, fractions, exact powers and roots): exact
//!   comparison, so `1/3` != `0.333` while `0.5` = `\frac{2}{4}`.
//! - Otherwise real numbers agree within a relative tolerance of [`REL_TOL`] (`1e-9`): enough
//!   for `2\sqrt2` = `\sqrt8`, far too tight for a rounded decimal to pass for `\sqrt2`.
//! - With variables, both sides are evaluated at [`POINTS`] fixed pseudo-random points (half
//!   positive, half negative); points where either side has no real value are skipped, at
//!   least three must remain, and all must agree.
//! - `x\%` against a side without `%` matches either `x` or `x/100` (the MATH convention is to
//!   write the number without the sign; both readings are accepted).
//! - A base subscript `52_8` matches `52_8` and `52_{8}` only: not the bare digits `52` (that
//!   would make `40_9` equal `40`) nor its decimal value (the question asked for base 8).
//! - Words (`Evelyn`, `even`) compare case-insensitively; single letters too (choices `(C)`).
//! - Tuples and intervals are ordered and keep bracket kinds; sets, bare lists of solutions and
//!   unions are unordered; a one-row or one-column matrix matches the tuple of its entries.

use super::expr::{self, Expr, Value};
use super::rational::Rational;
use super::structure::{Node, MAX_ITEMS};

pub const REL_TOL: f64 = 1e-9;
const ABS_TOL: f64 = 1e-12;
pub const POINTS: usize = 8;

/// One scalar, classified.
#[derive(Debug, Clone)]
enum Scalar {
    Infinity { negative: bool },
    Word(String),
    Base { digits: String, base: String },
    Expr { expr: Expr, percent: bool },
    Text(String),
}

fn classify(s: &str) -> Scalar {
    let t = s.trim();
    match t {
        "\\infty" | "+\\infty" | "infty" | "inf" | "infinity" => {
            return Scalar::Infinity { negative: false }
        }
        "-\\infty" | "-infty" | "-inf" | "-infinity" => return Scalar::Infinity { negative: true },
        _ => {}
    }
    if let Some(b) = base_numeral(t) {
        return b;
    }
    if t.chars().count() > 1 && t.chars().all(|c| c.is_alphabetic() || c == ' ') {
        return Scalar::Word(t.to_lowercase());
    }
    let (body, percent) = match t.strip_suffix('%') {
        Some(b) => (b, true),
        None => (t, false),
    };
    match expr::parse(body) {
        Some(expr) => Scalar::Expr { expr, percent },
        None => Scalar::Text(t.to_owned()),
    }
}

/// `52_8`, `52_{8}`, `A3_{16}`.
fn base_numeral(t: &str) -> Option<Scalar> {
    let (digits, base) = t.split_once('_')?;
    let base = base
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or(base);
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_alphanumeric())
        && digits.chars().any(|c| c.is_ascii_digit())
        && !base.is_empty()
        && base.chars().all(|c| c.is_ascii_digit());
    ok.then(|| Scalar::Base {
        digits: digits.to_ascii_uppercase(),
        base: base.trim_start_matches('0').to_owned(),
    })
}

/// The canonical text of one scalar (equal keys imply equal meaning).
fn scalar_key(s: &str) -> String {
    match classify(s) {
        Scalar::Infinity { negative } => if negative { "-\\infty" } else { "\\infty" }.into(),
        Scalar::Word(w) => w,
        Scalar::Base { digits, base } => format!("{digits}_{base}"),
        Scalar::Expr { expr, percent } => {
            let sign = if percent { "%" } else { "" };
            match expr::eval(&expr, &|_| None) {
                Some(Value::Exact(q)) => format!("{q}{sign}"),
                _ => s.trim().to_owned(),
            }
        }
        Scalar::Text(t) => t,
    }
}

/// The canonical text of a whole answer.
pub fn key(node: &Node) -> String {
    let joined = |items: &[Node], sep: &str, sorted: bool| {
        let mut keys: Vec<String> = items.iter().map(key).collect();
        if sorted {
            keys.sort();
        }
        keys.join(sep)
    };
    match node {
        Node::Scalar(s) => scalar_key(s),
        Node::Tuple { open, close, items } => format!("{open}{}{close}", joined(items, ",", false)),
        Node::Set(items) => format!("\\{{{}\\}}", joined(items, ",", true)),
        Node::List(items) => joined(items, ",", true),
        Node::Union(items) => joined(items, "\\cup", true),
        Node::Matrix(rows) => {
            let rows: Vec<String> = rows.iter().map(|r| joined(r, "&", false)).collect();
            format!("\\begin{{pmatrix}}{}\\end{{pmatrix}}", rows.join("\\\\"))
        }
    }
}

/// Outcome of comparing two nodes that did not share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Different,
    /// At least one side could only be read as free text, and the texts differ.
    Unreadable,
}

pub fn compare_nodes(a: &Node, b: &Node) -> Verdict {
    if key(a) == key(b) {
        return Verdict::Same;
    }
    let all = |pairs: &mut dyn Iterator<Item = (&Node, &Node)>| {
        let mut worst = Verdict::Same;
        for (x, y) in pairs {
            match compare_nodes(x, y) {
                Verdict::Same => {}
                v => worst = v,
            }
            if worst == Verdict::Different {
                break;
            }
        }
        worst
    };
    match (a, b) {
        (Node::Scalar(x), Node::Scalar(y)) => compare_scalars(x, y),
        (
            Node::Tuple {
                open: o1,
                close: c1,
                items: i1,
            },
            Node::Tuple {
                open: o2,
                close: c2,
                items: i2,
            },
        ) => {
            if o1 != o2 || c1 != c2 || i1.len() != i2.len() {
                return Verdict::Different;
            }
            all(&mut i1.iter().zip(i2))
        }
        (Node::Set(x) | Node::List(x), Node::Set(y) | Node::List(y))
        | (Node::Union(x), Node::Union(y)) => unordered(x, y),
        (Node::Matrix(x), Node::Matrix(y)) => {
            if x.len() != y.len() || x.iter().zip(y).any(|(r, s)| r.len() != s.len()) {
                return Verdict::Different;
            }
            all(&mut x.iter().flatten().zip(y.iter().flatten()))
        }
        (
            Node::Matrix(m),
            Node::Tuple {
                open: '(',
                close: ')',
                items,
            },
        )
        | (
            Node::Tuple {
                open: '(',
                close: ')',
                items,
            },
            Node::Matrix(m),
        ) => {
            // A vector written as a one-column (or one-row) matrix or as a tuple.
            let vector = m.len() == 1 || m.iter().all(|r| r.len() == 1);
            let entries: Vec<&Node> = m.iter().flatten().collect();
            if !vector || entries.len() != items.len() {
                return Verdict::Different;
            }
            all(&mut entries.into_iter().zip(items))
        }
        _ => Verdict::Different,
    }
}

/// Multiset matching: every item of `a` pairs with a distinct equivalent item of `b`.
fn unordered(a: &[Node], b: &[Node]) -> Verdict {
    if a.len() != b.len() || a.len() > MAX_ITEMS {
        return Verdict::Different;
    }
    let mut used = vec![false; b.len()];
    for x in a {
        let found = b
            .iter()
            .enumerate()
            .find(|(j, y)| !used[*j] && compare_nodes(x, y) == Verdict::Same);
        match found {
            Some((j, _)) => used[j] = true,
            None => return Verdict::Different,
        }
    }
    Verdict::Same
}

fn compare_scalars(a: &str, b: &str) -> Verdict {
    use Scalar::*;
    let same = |eq: bool| {
        if eq {
            Verdict::Same
        } else {
            Verdict::Different
        }
    };
    match (classify(a), classify(b)) {
        (Infinity { negative: x }, Infinity { negative: y }) => same(x == y),
        (Word(x), Word(y)) => same(x == y),
        (
            Base {
                digits: d1,
                base: b1,
            },
            Base {
                digits: d2,
                base: b2,
            },
        ) => same(d1 == d2 && b1 == b2),
        (
            Expr {
                expr: x,
                percent: p,
            },
            Expr {
                expr: y,
                percent: q,
            },
        ) => {
            if p == q {
                return same(values_agree(&x, &y));
            }
            let (pct, other) = if p { (x, y) } else { (y, x) };
            let hundredth = expr::Expr::Div(
                Box::new(pct.clone()),
                Box::new(expr::Expr::Num(Rational::integer(100))),
            );
            same(values_agree(&pct, &other) || values_agree(&hundredth, &other))
        }
        (Text(_), _) | (_, Text(_)) => Verdict::Unreadable,
        _ => Verdict::Different,
    }
}

fn single_letter(e: &Expr) -> Option<&str> {
    match e {
        Expr::Var(v) if v.len() == 1 => Some(v),
        _ => None,
    }
}

fn values_agree(a: &Expr, b: &Expr) -> bool {
    if let (Some(x), Some(y)) = (single_letter(a), single_letter(b)) {
        return x.eq_ignore_ascii_case(y);
    }
    let mut vars = Vec::new();
    expr::variables(a, &mut vars);
    expr::variables(b, &mut vars);
    if vars.is_empty() {
        return match (expr::eval(a, &|_| None), expr::eval(b, &|_| None)) {
            (Some(x), Some(y)) => numbers_agree(x, y),
            _ => false,
        };
    }
    let mut agreeing = 0;
    for point in 0..POINTS {
        let at = |name: &str| Some(sample(name, point));
        match (expr::eval(a, &at), expr::eval(b, &at)) {
            (Some(x), Some(y)) => {
                if !close(x.to_f64(), y.to_f64()) {
                    return false;
                }
                agreeing += 1;
            }
            // Outside one side's domain: this point says nothing.
            _ => continue,
        }
    }
    agreeing >= 3
}

fn numbers_agree(x: Value, y: Value) -> bool {
    match (x, y) {
        (Value::Exact(p), Value::Exact(q)) => p == q,
        _ => close(x.to_f64(), y.to_f64()),
    }
}

fn close(x: f64, y: f64) -> bool {
    (x - y).abs() <= REL_TOL * x.abs().max(y.abs()) + ABS_TOL
}

/// A fixed pseudo-random value for variable `name` at point `k`: in [0.5, 2.5) for the first
/// half of the points and in (-2.5, -0.5] for the second (away from 0 and ±1, where distinct
/// polynomials often meet). Deterministic, so grading is reproducible.
fn sample(name: &str, k: usize) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain((k as u64).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    let magnitude = 0.5 + 2.0 * unit;
    if k < POINTS / 2 {
        magnitude
    } else {
        -magnitude
    }
}
