//! A small parser and evaluator for real-valued answer expressions written in LaTeX or plain
//! text: numbers, `+ - * / ^`, implicit multiplication, `\frac`, `\sqrt[n]{}`, `\pi`, `e`,
//! `\cdot`, `\times`, `!`, `|x|`, common functions, and single-letter variables.
//!
//! Bounded by design: at most [`MAX_TOKENS`] tokens and [`MAX_DEPTH`] nested levels, so that
//! neither parsing nor evaluation can overflow the stack; arithmetic is exact (checked `i128`
//! rationals) while it fits and `f64` after that; a non-finite result is "no value", so
//! `10^{10^{10}}` neither hangs nor compares equal to anything by accident.

use super::rational::Rational;

pub const MAX_TOKENS: usize = 400;
pub const MAX_DEPTH: usize = 200;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Var(String),
    Cmd(String),
    Sym(char),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(Rational),
    Pi,
    E,
    Var(String),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Root(Box<Expr>, Box<Expr>),
    Log(Box<Expr>, Box<Expr>),
    Fact(Box<Expr>),
    Abs(Box<Expr>),
    Call(Func, Box<Expr>),
}

/// The value of an expression: exact while possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Exact(Rational),
    Real(f64),
}

impl Value {
    pub fn to_f64(self) -> f64 {
        match self {
            Value::Exact(q) => q.to_f64(),
            Value::Real(x) => x,
        }
    }
}

const FUNCS: &[(&str, Func)] = &[
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("cot", Func::Cot),
    ("sec", Func::Sec),
    ("csc", Func::Csc),
    ("arcsin", Func::Asin),
    ("arccos", Func::Acos),
    ("arctan", Func::Atan),
    ("sinh", Func::Sinh),
    ("cosh", Func::Cosh),
    ("tanh", Func::Tanh),
    ("ln", Func::Ln),
    ("exp", Func::Exp),
];

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
];

/// Plain-text words a student may type instead of LaTeX.
const PLAIN_WORDS: &[&str] = &[
    "sqrt", "pi", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sin", "cos", "tan", "cot",
    "sec", "csc", "ln", "log", "exp",
];

/// Whether a word is one a student may type for a function or constant (`sqrt`, `pi`, `sin`).
pub fn is_function_word(word: &str) -> bool {
    PLAIN_WORDS.contains(&word)
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if toks.len() > MAX_TOKENS {
            return None;
        }
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            let mut seen_point = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.'
                        && !seen_point
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                seen_point |= chars[i] == '.';
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c == '\\' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == start {
                return None; // `\{`, `\\` and friends are not part of a scalar
            }
            toks.push(Tok::Cmd(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            split_word(&word, &mut toks);
        } else if "+-*/^()[]{}!_|".contains(c) {
            toks.push(Tok::Sym(c));
            i += 1;
        } else {
            return None;
        }
    }
    (toks.len() <= MAX_TOKENS).then_some(toks)
}

/// `sqrt`, `pi`, `sin` typed as words become commands; other letter runs are products of
/// single-letter variables (`xy` = `x*y`).
fn split_word(word: &str, toks: &mut Vec<Tok>) {
    let mut rest = word;
    while !rest.is_empty() {
        if let Some(w) = PLAIN_WORDS.iter().find(|w| rest.starts_with(*w)) {
            toks.push(Tok::Cmd((*w).to_owned()));
            rest = &rest[w.len()..];
        } else {
            let (head, tail) = rest.split_at(1);
            toks.push(Tok::Var(head.to_owned()));
            rest = tail;
        }
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    abs_open: usize,
}

type P = Option<Box<Expr>>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn expr(&mut self) -> P {
        self.enter()?;
        let mut lhs = self.term()?;
        loop {
            if self.eat('+') {
                lhs = Box::new(Expr::Add(lhs, self.term()?));
            } else if self.eat('-') {
                lhs = Box::new(Expr::Sub(lhs, self.term()?));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(lhs)
    }

    fn term(&mut self) -> P {
        let mut lhs = self.unary()?;
        if let Some(mixed) = self.mixed_number(&lhs) {
            lhs = mixed;
        }
        loop {
            match self.peek() {
                Some(Tok::Sym('*')) => {
                    self.pos += 1;
                    lhs = Box::new(Expr::Mul(lhs, self.unary()?));
                }
                Some(Tok::Sym('/')) => {
                    self.pos += 1;
                    lhs = Box::new(Expr::Div(lhs, self.unary()?));
                }
                Some(Tok::Cmd(c)) if c == "cdot" || c == "times" => {
                    self.pos += 1;
                    lhs = Box::new(Expr::Mul(lhs, self.unary()?));
                }
                Some(Tok::Cmd(c)) if c == "div" => {
                    self.pos += 1;
                    lhs = Box::new(Expr::Div(lhs, self.unary()?));
                }
                _ if self.starts_factor() => {
                    lhs = Box::new(Expr::Mul(lhs, self.power()?));
                }
                _ => break,
            }
        }
        Some(lhs)
    }

    /// `4\frac{2}{3}` written right after an integer literal is the mixed number 14/3 (the
    /// competition convention), not a product; `(4)\frac23` and `x\frac23` stay products.
    fn mixed_number(&mut self, whole: &Expr) -> P {
        let (negative, w) = match whole {
            Expr::Num(q) => (false, *q),
            Expr::Neg(b) => match **b {
                Expr::Num(q) => (true, q),
                _ => return None,
            },
            _ => return None,
        };
        let after_literal = self.pos > 0 && matches!(self.toks[self.pos - 1], Tok::Num(_));
        if !w.is_integer() || !after_literal || self.peek() != Some(&Tok::Cmd("frac".into())) {
            return None;
        }
        let saved = (self.pos, self.toks.clone()); // `argument` may split a token
        self.pos += 1;
        let (num, den) = (self.argument(), self.argument());
        match (num, den) {
            (Some(n), Some(d)) if is_integer_literal(&n) && is_integer_literal(&d) => {
                let sum = Expr::Add(Box::new(Expr::Num(w)), Box::new(Expr::Div(n, d)));
                Some(Box::new(if negative {
                    Expr::Neg(Box::new(sum))
                } else {
                    sum
                }))
            }
            _ => {
                (self.pos, self.toks) = saved;
                None
            }
        }
    }

    /// Whether the next token can begin a factor of an implicit product (`2\pi`, `3(x+1)`).
    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_) | Tok::Var(_)) => true,
            Some(Tok::Sym('(' | '{' | '[')) => true,
            Some(Tok::Sym('|')) => self.abs_open == 0,
            Some(Tok::Cmd(c)) => !matches!(c.as_str(), "cdot" | "times" | "div" | "infty"),
            _ => false,
        }
    }

    fn unary(&mut self) -> P {
        self.enter()?;
        let e = if self.eat('-') {
            Box::new(Expr::Neg(self.unary()?))
        } else if self.eat('+') {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Some(e)
    }

    fn power(&mut self) -> P {
        self.enter()?;
        let mut base = self.primary()?;
        while self.eat('!') {
            base = Box::new(Expr::Fact(base));
        }
        if self.eat('^') {
            let exp = self.exponent()?;
            base = Box::new(Expr::Pow(base, exp));
        }
        self.depth -= 1;
        Some(base)
    }

    /// The exponent after `^`: a braced group, or a signed single factor (`x^-1`, `2^10`).
    fn exponent(&mut self) -> P {
        if self.eat('-') {
            return Some(Box::new(Expr::Neg(self.power()?)));
        }
        self.power()
    }

    /// A `\frac`/`\sqrt` argument: a braced group or a single token (`\frac12` = 1/2).
    fn argument(&mut self) -> P {
        if let Some(Tok::Num(n)) = self.peek() {
            if n.len() > 1 && !n.starts_with('.') {
                let (head, tail) = n.split_at(1);
                let head = Rational::parse_decimal(head)?;
                let tail = tail.to_owned();
                self.toks[self.pos] = Tok::Num(tail);
                return Some(Box::new(Expr::Num(head)));
            }
        }
        self.primary()
    }

    fn group(&mut self, close: char) -> P {
        let e = self.expr()?;
        self.eat(close).then_some(e)
    }

    fn primary(&mut self) -> P {
        self.enter()?;
        let tok = self.peek()?.clone();
        self.pos += 1;
        let e = match tok {
            Tok::Num(n) => Box::new(Expr::Num(Rational::parse_decimal(&n)?)),
            Tok::Var(v) => {
                let mut name = v;
                if self.eat('_') {
                    // A subscripted variable `a_1`, `x_{n}` is one name.
                    match self.peek()?.clone() {
                        Tok::Num(n) => name = format!("{name}_{n}"),
                        Tok::Var(w) => name = format!("{name}_{w}"),
                        Tok::Sym('{') => {
                            let start = self.pos;
                            self.pos += 1;
                            while self.peek().is_some_and(|t| *t != Tok::Sym('}')) {
                                self.pos += 1;
                            }
                            name = format!("{name}_{:?}", &self.toks[start..self.pos]);
                        }
                        _ => return None,
                    }
                    self.pos += 1;
                }
                if name == "e" {
                    Box::new(Expr::E)
                } else {
                    Box::new(Expr::Var(name))
                }
            }
            Tok::Sym('(') => self.group(')')?,
            Tok::Sym('[') => self.group(']')?,
            Tok::Sym('{') => self.group('}')?,
            Tok::Sym('|') => {
                self.abs_open += 1;
                let inner = self.expr()?;
                self.abs_open -= 1;
                if !self.eat('|') {
                    return None;
                }
                Box::new(Expr::Abs(inner))
            }
            Tok::Cmd(c) => self.command(&c)?,
            Tok::Sym(_) => return None,
        };
        self.depth -= 1;
        Some(e)
    }

    fn command(&mut self, name: &str) -> P {
        Some(match name {
            "pi" => Box::new(Expr::Pi),
            "frac" => {
                let num = self.argument()?;
                let den = self.argument()?;
                Box::new(Expr::Div(num, den))
            }
            "sqrt" => {
                let index = if self.eat('[') {
                    self.group(']')?
                } else {
                    Box::new(Expr::Num(Rational::integer(2)))
                };
                Box::new(Expr::Root(index, self.argument()?))
            }
            "log" | "lg" => {
                let base = if self.eat('_') {
                    self.argument()?
                } else {
                    Box::new(Expr::E) // natural log, as in most of mathematics
                };
                let arg = self.func_argument()?;
                Box::new(Expr::Log(base, arg))
            }
            _ if GREEK.contains(&name) => Box::new(Expr::Var(format!("\\{name}"))),
            _ => {
                let (_, f) = FUNCS.iter().find(|(n, _)| *n == name)?;
                // `\sin^2 x` squares the value, not the argument.
                let exp = if self.eat('^') {
                    Some(self.exponent()?)
                } else {
                    None
                };
                let call = Box::new(Expr::Call(*f, self.func_argument()?));
                match exp {
                    Some(e) => Box::new(Expr::Pow(call, e)),
                    None => call,
                }
            }
        })
    }

    /// A function's argument: `(...)` or the next power-level factor (`\cot x`).
    fn func_argument(&mut self) -> P {
        if self.eat('(') {
            return self.group(')');
        }
        self.power()
    }
}

fn is_integer_literal(e: &Expr) -> bool {
    matches!(e, Expr::Num(q) if q.is_integer())
}

/// Parses a whole scalar expression; `None` when it is not one.
pub fn parse(text: &str) -> Option<Expr> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        abs_open: 0,
    };
    let e = p.expr()?;
    (p.pos == p.toks.len()).then_some(*e)
}

/// Names of the variables an expression uses (sorted, unique).
pub fn variables(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Var(v) => {
            if let Err(i) = out.binary_search(v) {
                out.insert(i, v.clone());
            }
        }
        Expr::Num(_) | Expr::Pi | Expr::E => {}
        Expr::Neg(a) | Expr::Fact(a) | Expr::Abs(a) | Expr::Call(_, a) => variables(a, out),
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Div(a, b)
        | Expr::Pow(a, b)
        | Expr::Root(a, b)
        | Expr::Log(a, b) => {
            variables(a, out);
            variables(b, out);
        }
    }
}

fn real(x: f64) -> Option<Value> {
    x.is_finite().then_some(Value::Real(x))
}

/// Exact when both sides are exact and the result fits, else floating point.
fn combine(
    a: Value,
    b: Value,
    exact: impl Fn(Rational, Rational) -> Option<Rational>,
    approx: impl Fn(f64, f64) -> f64,
) -> Option<Value> {
    if let (Value::Exact(x), Value::Exact(y)) = (a, b) {
        if let Some(q) = exact(x, y) {
            return Some(Value::Exact(q));
        }
    }
    real(approx(a.to_f64(), b.to_f64()))
}

/// Evaluates with `vars` giving each variable's value; `None` for no (finite, real) value.
pub fn eval(e: &Expr, vars: &dyn Fn(&str) -> Option<f64>) -> Option<Value> {
    match e {
        Expr::Num(q) => Some(Value::Exact(*q)),
        Expr::Pi => Some(Value::Real(std::f64::consts::PI)),
        Expr::E => Some(Value::Real(std::f64::consts::E)),
        Expr::Var(v) => real(vars(v)?),
        Expr::Neg(a) => match eval(a, vars)? {
            Value::Exact(q) => Some(Value::Exact(q.neg()?)),
            Value::Real(x) => real(-x),
        },
        Expr::Add(a, b) => combine(eval(a, vars)?, eval(b, vars)?, Rational::add, |x, y| x + y),
        Expr::Sub(a, b) => combine(eval(a, vars)?, eval(b, vars)?, Rational::sub, |x, y| x - y),
        Expr::Mul(a, b) => combine(eval(a, vars)?, eval(b, vars)?, Rational::mul, |x, y| x * y),
        Expr::Div(a, b) => {
            let d = eval(b, vars)?;
            if d.to_f64() == 0.0 {
                return None;
            }
            combine(eval(a, vars)?, d, Rational::div, |x, y| x / y)
        }
        Expr::Pow(a, b) => power(eval(a, vars)?, eval(b, vars)?),
        Expr::Root(n, a) => {
            let n = eval(n, vars)?;
            let x = eval(a, vars)?;
            let Value::Exact(nq) = n else { return None };
            let idx = u32::try_from(nq.numer())
                .ok()
                .filter(|&k| nq.is_integer() && (1..=64).contains(&k))?;
            root(x, idx)
        }
        Expr::Log(base, a) => {
            let b = eval(base, vars)?.to_f64();
            let x = eval(a, vars)?.to_f64();
            if b <= 0.0 || b == 1.0 || x <= 0.0 {
                return None;
            }
            real(x.ln() / b.ln())
        }
        Expr::Fact(a) => {
            let Value::Exact(q) = eval(a, vars)? else {
                return None;
            };
            let n = q.numer();
            if !q.is_integer() || !(0..=33).contains(&n) {
                return None;
            }
            let f = (1..=n).try_fold(1i128, |acc, k| acc.checked_mul(k))?;
            Some(Value::Exact(Rational::integer(f)))
        }
        Expr::Abs(a) => match eval(a, vars)? {
            Value::Exact(q) => Some(Value::Exact(if q < Rational::ZERO { q.neg()? } else { q })),
            Value::Real(x) => real(x.abs()),
        },
        Expr::Call(f, a) => {
            let x = eval(a, vars)?.to_f64();
            real(match f {
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.tan(),
                Func::Cot => 1.0 / x.tan(),
                Func::Sec => 1.0 / x.cos(),
                Func::Csc => 1.0 / x.sin(),
                Func::Asin => x.asin(),
                Func::Acos => x.acos(),
                Func::Atan => x.atan(),
                Func::Sinh => x.sinh(),
                Func::Cosh => x.cosh(),
                Func::Tanh => x.tanh(),
                Func::Ln => x.ln(),
                Func::Exp => x.exp(),
            })
        }
    }
}

fn root(x: Value, n: u32) -> Option<Value> {
    if let Value::Exact(q) = x {
        if let Some(r) = q.root(n) {
            return Some(Value::Exact(r));
        }
    }
    let v = x.to_f64();
    if v < 0.0 {
        // Odd roots of negatives are real; even ones are not.
        return if n % 2 == 1 {
            real(-(-v).powf(1.0 / f64::from(n)))
        } else {
            None
        };
    }
    real(v.powf(1.0 / f64::from(n)))
}

fn power(base: Value, exp: Value) -> Option<Value> {
    if let (Value::Exact(b), Value::Exact(e)) = (base, exp) {
        if e.is_integer() {
            if let Some(q) = b.pow(e.numer()) {
                return Some(Value::Exact(q));
            }
        } else if let Ok(k) = u32::try_from(e.denom()) {
            // A rational exponent p/q: exact when the q-th root is.
            if k <= 64 {
                if let Some(q) = b.root(k).and_then(|r| r.pow(e.numer())) {
                    return Some(Value::Exact(q));
                }
                if b < Rational::ZERO && k % 2 == 1 {
                    let r = root(Value::Exact(b), k)?.to_f64();
                    return real(r.powf(e.numer() as f64));
                }
            }
        }
    }
    real(base.to_f64().powf(exp.to_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<f64> {
        eval(&parse(s)?, &|_| None).map(Value::to_f64)
    }

    #[test]
    fn latex_and_plain_text_evaluate() {
        assert_eq!(num(r"\frac12"), Some(0.5));
        assert_eq!(num(r"\frac{270}7"), Some(270.0 / 7.0));
        assert_eq!(num(r"2\sqrt2"), num("2*sqrt(2)"));
        assert_eq!(num(r"\sqrt[3]{27}"), Some(3.0));
        assert_eq!(num(r"5!"), Some(120.0));
        assert_eq!(num(r"10^{10^{10}}"), None);
        assert_eq!(num(r"\frac{1}"), None);
        assert_eq!(num(r"((((1"), None);
        assert!(parse(&"(".repeat(10_000)).is_none());
    }
}
