//! The shape of a cleaned answer: a scalar, an ordered tuple or interval, a set, an unordered
//! list of solutions (`1, 2, 3`, `x=1 or x=2`, `1 \pm \sqrt{19}`), a union of intervals, or a
//! matrix. Splitting only happens at bracket depth zero, and nesting is bounded.

/// Nested structures deeper than this are compared as text.
const MAX_NESTING: usize = 16;
/// Lists longer than this are compared as text (no quadratic blow-up on garbage).
pub const MAX_ITEMS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(String),
    /// `(1, 2)`, `[0, 1)`: ordered, and the bracket kinds matter (intervals).
    Tuple {
        open: char,
        close: char,
        items: Vec<Node>,
    },
    /// `\{1, 2\}`: unordered.
    Set(Vec<Node>),
    /// A bare list of solutions: unordered.
    List(Vec<Node>),
    /// `A \cup B`: unordered.
    Union(Vec<Node>),
    Matrix(Vec<Vec<Node>>),
}

pub fn parse(s: &str) -> Node {
    node(s, 0)
}

fn node(s: &str, depth: usize) -> Node {
    let s = strip_assignment(s.trim());
    if depth > MAX_NESTING || s.is_empty() {
        return Node::Scalar(s.to_owned());
    }
    if let Some(m) = matrix(s, depth) {
        return m;
    }
    let parts = split_top(s, "\\cup");
    if parts.len() > 1 {
        return items(&parts, depth).map_or_else(|| Node::Scalar(s.to_owned()), Node::Union);
    }
    if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
        if closes_at_end(s) {
            let parts = split_top(inner, ",");
            return items(&parts, depth).map_or_else(|| Node::Scalar(s.to_owned()), Node::Set);
        }
    }
    let first = s.chars().next().unwrap_or(' ');
    let last = s.chars().last().unwrap_or(' ');
    if "([".contains(first) && ")]".contains(last) && closes_at_end(s) {
        let inner = &s[1..s.len() - 1];
        let parts = split_top(inner, ",");
        if parts.len() > 1 {
            return items(&parts, depth).map_or_else(
                || Node::Scalar(s.to_owned()),
                |items| Node::Tuple {
                    open: first,
                    close: last,
                    items,
                },
            );
        }
        if first == '(' && last == ')' {
            // Plain grouping: `(540)`, `(C)`.
            return node(inner, depth + 1);
        }
    }
    let parts = split_top(s, ",");
    if parts.len() > 1 {
        return items(&parts, depth).map_or_else(|| Node::Scalar(s.to_owned()), Node::List);
    }
    for pm in ["\\pm", "\\mp"] {
        let parts = split_top(s, pm);
        if parts.len() == 2 {
            let (a, b) = (parts[0], parts[1]);
            return Node::List(vec![
                node(&format!("{a}+{b}"), depth + 1),
                node(&format!("{a}-{b}"), depth + 1),
            ]);
        }
    }
    Node::Scalar(s.to_owned())
}

fn items(parts: &[&str], depth: usize) -> Option<Vec<Node>> {
    (parts.len() <= MAX_ITEMS).then(|| parts.iter().map(|p| node(p, depth + 1)).collect())
}

/// `\begin{pmatrix} a & b \\ c & d \end{pmatrix}` (any `*matrix` environment).
fn matrix(s: &str, depth: usize) -> Option<Node> {
    let rest = s.strip_prefix("\\begin{")?;
    let (env, rest) = rest.split_once('}')?;
    if !env.ends_with("matrix") {
        return None;
    }
    let body = rest.strip_suffix(&format!("\\end{{{env}}}"))?;
    let rows: Vec<&str> = split_top(body, "\\\\")
        .into_iter()
        .filter(|r| !r.trim().is_empty())
        .collect();
    if rows.is_empty() || rows.len() > MAX_ITEMS {
        return None;
    }
    let rows = rows
        .iter()
        .map(|r| items(&split_top(r, "&"), depth))
        .collect::<Option<Vec<_>>>()?;
    Some(Node::Matrix(rows))
}

/// `x = 5` -> `5`, `x \in [0,1)` -> `[0,1)`: a single (possibly subscripted or Greek) variable
/// on the left says nothing about the value.
fn strip_assignment(s: &str) -> &str {
    let name_len = if let Some(rest) = s.strip_prefix('\\') {
        let n = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        if !(2..=10).contains(&n) {
            return s;
        }
        n + 1
    } else if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let mut n = 1;
        if let Some(sub) = s[1..].strip_prefix('_') {
            let sub_len = if let Some(b) = sub.strip_prefix('{') {
                b.find('}').map(|e| e + 2)
            } else {
                sub.chars().next().map(char::len_utf8)
            };
            n += 1 + sub_len.unwrap_or(0);
        }
        n
    } else {
        return s;
    };
    let Some(rest) = s.get(name_len..) else {
        return s;
    };
    let rest = rest.trim_start();
    let value = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix("\\in"))
        .map(str::trim);
    match value {
        // Only one `=`: `x = y = 3` or `a = b + c` style equations are left alone.
        Some(v) if !v.is_empty() && !v.contains('=') => v,
        _ => s,
    }
}

/// Whether the bracket opening `s` closes at its very end (so `(a+5)(b+2)` is not a group).
fn closes_at_end(s: &str) -> bool {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth <= 0 {
                    return i + 1 == s.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// Splits at `sep` where no bracket is open. Unbalanced text splits as best it can.
pub fn split_top<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && s[i..].starts_with(sep) && !continues_command(s, i, sep) {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
        while i < bytes.len() && !s.is_char_boundary(i) {
            i += 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `\pm` must not match inside `\pmatrix`, nor `\cup` inside `\cupcake`.
fn continues_command(s: &str, i: usize, sep: &str) -> bool {
    sep.starts_with('\\')
        && sep[1..].bytes().all(|b| b.is_ascii_alphabetic())
        && s[i + sep.len()..].starts_with(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(s: &str) -> Node {
        Node::Scalar(s.into())
    }

    #[test]
    fn shapes() {
        assert_eq!(parse("(a+5)(b+2)"), scalar("(a+5)(b+2)"));
        assert_eq!(parse("(540)"), scalar("540"));
        assert_eq!(parse("x=1,x=2"), Node::List(vec![scalar("1"), scalar("2")]));
        assert_eq!(
            parse("[0,1)"),
            Node::Tuple {
                open: '[',
                close: ')',
                items: vec![scalar("0"), scalar("1")]
            }
        );
        assert_eq!(parse(r"\{1,2\}"), Node::Set(vec![scalar("1"), scalar("2")]));
        assert_eq!(
            parse(r"1\pm\sqrt{19}"),
            Node::List(vec![scalar(r"1+\sqrt{19}"), scalar(r"1-\sqrt{19}")])
        );
        assert_eq!(
            parse(r"\begin{pmatrix}1\\2\end{pmatrix}"),
            Node::Matrix(vec![vec![scalar("1")], vec![scalar("2")]])
        );
    }
}
