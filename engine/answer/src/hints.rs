//! The leak screen of the hint ladder: whether a hint's text reveals an answer, judged with the
//! engine's equivalence checker, and the hint with every revealing sentence cut.
//!
//! A hint "reveals" an answer when any value written in it is equivalent to that answer:
//! - each math span (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`), each side of an `=`, `≈`, `<`, `>`
//!   inside it and each item of a top-level list in it (`x = 2, 3`);
//! - outside math, each run of numbers and arithmetic (`30 + 12 = 42`, `1,000`, `3/4`, `25%`),
//!   each side of its `=`, and each of its numbers alone;
//! - an answer that is not a number (a name, a choice, an expression with letters) also leaks
//!   when its cleaned text appears in the hint's cleaned text;
//! - with [`Withheld::asking`], a number stated as the value of an unknown the problem's question
//!   names (`x = 28` for "What is $x$?") leaks whatever that number is.
//!
//! Values are evaluated, so `30 + 12` reveals 42 and `$\frac{84}{2}$` does too. An answer with
//! several parts (`2, 3`, `\{2, 3\}`, `(3, 2)`) is screened part by part as well: a hint that
//! says "one root is 3" gives away half of it. The screen is deliberately strict: a number of
//! the problem statement that equals the answer is cut too, because the student cannot tell
//! which of the hint's numbers is the result.

use crate::{equivalent, normalize};

/// Text longer than this is screened sentence by sentence only up to here (hints are short;
/// this bounds the work on hostile model output).
const MAX_SCREENED_CHARS: usize = 8000;

/// The answers a hint must not reveal, with their parts, and the unknowns the problem asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Withheld {
    answers: Vec<String>,
    asked: Vec<char>,
}

impl Withheld {
    /// The answers to withhold (the selected answer, every candidate's answer, the ground
    /// truth when known); blanks are ignored, and the parts of a list-like answer are added.
    pub fn new<'a>(answers: impl IntoIterator<Item = &'a str>) -> Withheld {
        let mut withheld = Withheld::default();
        for answer in answers {
            let answer = answer.trim();
            if answer.is_empty() {
                continue;
            }
            withheld.push(answer);
            let inner = strip_outer_brackets(&normalize::clean(answer));
            let parts: Vec<&str> = crate::structure::split_top(&inner, ",")
                .into_iter()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if parts.len() > 1 {
                for part in parts {
                    withheld.push(part);
                }
            }
        }
        withheld
    }

    /// Also withholds the value of every unknown the problem's question names (`What is $x$?`):
    /// a hint that concludes `x = 28` gives the result away even when that result is none of
    /// the answers the tutor knows (its own answers can all be wrong).
    pub fn asking(mut self, problem: &str) -> Withheld {
        self.asked = asked_unknowns(problem);
        self
    }

    fn push(&mut self, answer: &str) {
        if !self.answers.iter().any(|a| a == answer) {
            self.answers.push(answer.to_owned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.asked.is_empty()
    }

    /// Whether `text` reveals any withheld answer (see the module's documentation).
    pub fn revealed_in(&self, text: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let text: String = text.chars().take(MAX_SCREENED_CHARS).collect();
        if self.asked.iter().any(|&x| states_value_of(&text, x)) {
            return true;
        }
        let values = values_in(&text);
        let flat = flatten(&text);
        self.answers.iter().any(|answer| {
            values.iter().any(|v| equivalent(v, answer)) || {
                let key = flatten(answer);
                key.chars().count() >= 2
                    && key.chars().any(|c| c.is_alphabetic())
                    && flat.contains(&key)
            }
        })
    }

    /// `text` without the sentences that reveal a withheld answer; `None` when nothing of it
    /// is left.
    pub fn cut(&self, text: &str) -> Option<String> {
        let kept: Vec<&str> = sentences(text)
            .into_iter()
            .filter(|s| !self.revealed_in(s))
            .collect();
        let kept = kept.concat();
        let kept = kept.trim();
        (kept.chars().any(|c| c.is_alphanumeric())).then(|| kept.to_owned())
    }
}

/// `\{…\}`, `(…)`, `[…]` around a whole answer, removed so its items can be split.
fn strip_outer_brackets(s: &str) -> String {
    let s = s.trim();
    for (open, close) in [("\\{", "\\}"), ("(", ")"), ("[", "]"), ("{", "}")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner.to_owned();
        }
    }
    s.to_owned()
}

/// Lowercase, letters and digits only: for the plain-text comparison of non-numeric answers.
fn flatten(s: &str) -> String {
    normalize::clean(s)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every value written in `text` (see the module's documentation), as strings for the
/// equivalence checker.
fn values_in(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut outside = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        match next_math(rest) {
            Some((before, math, after)) => {
                outside.push_str(before);
                outside.push(' ');
                math_values(math, &mut values);
                rest = after;
            }
            None => {
                outside.push_str(rest);
                break;
            }
        }
    }
    plain_values(&outside, &mut values);
    values
}

/// The first math span of `s`: the text before it, its content, the text after it.
fn next_math(s: &str) -> Option<(&str, &str, &str)> {
    const DELIMITERS: [(&str, &str); 4] =
        [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")];
    let (start, open, close) = DELIMITERS
        .iter()
        .filter_map(|(open, close)| s.find(open).map(|i| (i, *open, *close)))
        .min_by_key(|(i, open, _)| (*i, usize::MAX - open.len()))?;
    let body = &s[start + open.len()..];
    let end = body.find(close)?;
    Some((&s[..start], &body[..end], &body[end + close.len()..]))
}

/// Relations that separate the sides of a statement in math.
const RELATIONS: &[&str] = &[
    "=",
    "\\approx",
    "\\le",
    "\\ge",
    "\\leq",
    "\\geq",
    "\\neq",
    "<",
    ">",
    "\\to",
    "\\implies",
    "\\Rightarrow",
];

fn math_values(math: &str, values: &mut Vec<String>) {
    let math = math.trim();
    if math.is_empty() {
        return;
    }
    values.push(math.to_owned());
    let mut sides = vec![math.to_owned()];
    for relation in RELATIONS {
        sides = sides
            .iter()
            .flat_map(|s| crate::structure::split_top(s, relation))
            .map(|s| s.trim().to_owned())
            .collect();
    }
    for side in sides {
        if side.is_empty() {
            continue;
        }
        let items = crate::structure::split_top(&side, ",");
        if items.len() > 1 {
            values.extend(items.iter().map(|i| i.trim().to_owned()));
        }
        // `\boxed{…}` inside a span is an answer stated outright.
        values.push(side);
    }
}

/// Characters of a run of arithmetic outside math.
fn is_arithmetic(c: char) -> bool {
    // `!` for factorials: "5! * 3!" is 720.
    c.is_ascii_digit() || " .,+-*/×÷−^()=%!".contains(c)
}

fn plain_values(text: &str, values: &mut Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_arithmetic(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_arithmetic(chars[i]) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        if !run.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        // A comma followed by a space separates items ("3, 2"); between digits it groups
        // thousands ("1,000").
        for item in run.split(", ") {
            for side in item.split('=') {
                let side = side
                    .trim()
                    .trim_end_matches(['.', ',', '('])
                    .trim_start_matches(')')
                    .trim();
                if side.chars().any(|c| c.is_ascii_digit()) {
                    values.push(side.replace(['×', '*'], "\\times ").replace('÷', "/"));
                    values.extend(numbers(side));
                }
            }
        }
    }
}

/// The numbers of a run of arithmetic, each alone (`30 + 12` → `30`, `12`).
fn numbers(run: &str) -> Vec<String> {
    run.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map(|n| n.trim_matches(['.', ',']))
        .filter(|n| n.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

/// The unknowns a problem's question names: the single-letter math spans (`$x$`, `\\(n\\)`) of its
/// last sentence that asks something.
fn asked_unknowns(problem: &str) -> Vec<char> {
    let problem: String = problem.chars().take(MAX_SCREENED_CHARS).collect();
    let question = sentences(&problem)
        .into_iter()
        .rev()
        .find(|s| s.contains('?') || asks(s))
        .unwrap_or_default();
    let mut unknowns = Vec::new();
    let mut rest = question;
    while let Some((_, math, after)) = next_math(rest) {
        let mut letters = math.trim().chars();
        if let (Some(x), None) = (letters.next(), letters.next()) {
            if x.is_ascii_alphabetic() && !unknowns.contains(&x) {
                unknowns.push(x);
            }
        }
        rest = after;
    }
    unknowns
}

/// Whether a sentence gives an instruction to find something ("Find $x$.", "Compute …").
fn asks(sentence: &str) -> bool {
    let first = sentence.split_whitespace().next().unwrap_or_default();
    [
        "Find",
        "Compute",
        "Determine",
        "Evaluate",
        "Solve",
        "Express",
        "Simplify",
    ]
    .contains(&first.trim_matches(|c: char| !c.is_alphabetic()))
}

/// Whether `text` states a number as the value of the unknown `x` (`x = 28`, `$x=\\frac{3}{2}$`):
/// `x` alone on one side of an `=` and a value without unknowns on the other.
fn states_value_of(text: &str, x: char) -> bool {
    let mut before: Option<char> = None;
    text.char_indices().any(|(i, c)| {
        let previous = before.replace(c);
        let after = &text[i + c.len_utf8()..];
        let alone = c == x
            && previous.is_none_or(|p| !p.is_alphanumeric() && p != '\\')
            && after.chars().next().is_none_or(|n| !n.is_alphanumeric());
        if !alone {
            return false;
        }
        let Some(value) = after.trim_start().strip_prefix('=') else {
            return false;
        };
        // The value runs to the end of its math span, clause or relation.
        let end = ["$", ",", ";", "\n", "\\)", "\\]", "="]
            .iter()
            .filter_map(|stop| value.find(stop))
            .min()
            .unwrap_or(value.len());
        let value = &value[..end];
        let value = value.trim().trim_end_matches(['.', '?', '!']).trim();
        let value = value.strip_suffix("^\\circ").unwrap_or(value);
        value.chars().any(|c| c.is_ascii_digit())
            && crate::expr::parse(value).is_some_and(|e| {
                let mut names = Vec::new();
                crate::expr::variables(&e, &mut names);
                names.is_empty()
            })
    })
}

/// `text` split after each sentence's end (`.`, `?`, `!` before a space, or a line break),
/// outside math, keeping every character so the pieces concatenate back to `text`.
fn sentences(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    // Inside `$…$`, `\(…\)` or `\[…\]`: `5! \times 3!` is one formula, not two sentences.
    let mut dollars = false;
    let mut brackets = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' => dollars = !dollars,
            b'\\' => match bytes.get(i + 1) {
                Some(b'(' | b'[') => brackets = true,
                Some(b')' | b']') => brackets = false,
                _ => {}
            },
            b'\n' => {
                pieces.push(&text[start..=i]);
                start = i + 1;
                dollars = false;
                brackets = false;
            }
            // A `!` right after a digit is a factorial ("5! ways"), not an exclamation.
            b'!' if i > 0 && bytes[i - 1].is_ascii_digit() => {}
            b'.' | b'?' | b'!'
                if !dollars
                    && !brackets
                    && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace()) =>
            {
                // "3.5" is a number, not a sentence's end; a period after a digit followed by
                // a space still ends one.
                pieces.push(&text[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reveals(text: &str, answers: &[&str]) -> bool {
        Withheld::new(answers.iter().copied()).revealed_in(text)
    }

    #[test]
    fn the_walkthroughs_leaks_are_caught() {
        assert!(reveals("Add the tens and the ones: 30 + 12 = 42.", &["42"]));
        // The sum alone gives the result away as well as the result does.
        assert!(reveals("Now work out 30 + 12.", &["42"]));
        assert!(reveals("So the roots are x = 3 and x = 2.", &["2, 3"]));
        assert!(reveals("One root is $x = 3$.", &["\\{2, 3\\}"]));
        assert!(reveals("The sum is $\\frac{1440}{2}$ degrees.", &["720"]));
        assert!(reveals("The answer is \\boxed{720}.", &["720"]));
        assert!(reveals("It costs $1,000 in all.", &["1000"]));
        assert!(reveals("That is 0.75 of the tank.", &["\\frac{3}{4}"]));
        assert!(reveals("She must be Evelyn.", &["\\text{Evelyn}"]));
    }

    #[test]
    fn hints_that_teach_without_telling_pass() {
        let answers = ["720", "540"];
        assert!(!reveals(
            "A hexagon can be cut into triangles from one vertex. How many?",
            &answers
        ));
        assert!(!reveals(
            "Use $(n-2) \\cdot 180^\\circ$ with the number of sides $n$.",
            &answers
        ));
        assert!(!reveals("Multiply 6 by 4 first.", &["42"]));
        assert!(!reveals(
            "Let $x$ be the number of apples.",
            &["\\text{Evelyn}"]
        ));
    }

    #[test]
    fn an_empty_withheld_list_reveals_nothing() {
        assert!(!Withheld::new(["", "  "]).revealed_in("42"));
        assert!(Withheld::new([" "]).is_empty());
    }

    #[test]
    fn cutting_removes_only_the_revealing_sentences() {
        let withheld = Withheld::new(["42"]);
        let hint = "Split 42 into tens. Then add 17 and 25? Think about place value.";
        assert_eq!(
            withheld.cut(hint).as_deref(),
            Some("Then add 17 and 25? Think about place value.")
        );
        assert_eq!(withheld.cut("It is 42."), None);
        assert_eq!(
            withheld.cut("Use 3.5 cups.\nThe total is $40 + 2$."),
            Some("Use 3.5 cups.".into())
        );
    }

    #[test]
    fn a_factorial_inside_a_formula_stays_in_its_sentence() {
        // Measured on MATH-500: "… is \\(5! \\times 3!\\)." was cut at each `!`, so neither piece
        // evaluated to 720 and the product stayed in the hint.
        let withheld = Withheld::new(["720"]);
        let hint = "Arrange the block in 3! ways. The total is \\(5! \\times 3!\\). Check it.";
        assert_eq!(
            withheld.cut(hint).as_deref(),
            Some("Arrange the block in 3! ways. Check it.")
        );
        assert!(reveals("There are 5! * 3! ways.", &["720"]));
    }

    #[test]
    fn the_value_of_the_asked_unknown_is_withheld_even_when_no_answer_is_known() {
        // Measured on MATH-500: the tutor answered 124 (wrong) and a hint concluded the right
        // answer, which no screen of the tutor's own answers could catch.
        let problem = "$\\overline{BC}$ is parallel to the segment through $A$, and $AB = BC$. \
What is the number of degrees represented by $x$?";
        let withheld = Withheld::new(["124"]).asking(problem);
        assert!(withheld.revealed_in("Therefore, x = 28."));
        assert!(withheld.revealed_in("So $x = 28^\\circ$ here."));
        assert!(withheld.revealed_in("This gives \\(x=\\frac{3}{2}\\)."));
        // Steps about the unknown that do not state its value pass.
        assert!(!withheld.revealed_in("Write an equation for $x$ using the angle sum."));
        assert!(!withheld.revealed_in("Solve $2x + 124 = 180$ for $x$."));
        assert!(!withheld.revealed_in("Let $y = 2x$."));
        assert!(!withheld.revealed_in("Then $x = 180 - 2y$ in terms of $y$."));
        // Only the unknowns of the question: `A` is named, but not asked for.
        assert!(!withheld.revealed_in("Put $A = 0$ on the number line."));
        assert_eq!(
            Withheld::new([""])
                .asking("Find $n$ if $2n = 6$.")
                .cut("Clearly n = 3. Check."),
            Some("Check.".into())
        );
    }

    #[test]
    fn hostile_text_is_bounded() {
        let long = "1 + ".repeat(50_000) + "1";
        assert!(!reveals(&long, &["7"]));
        assert!(!reveals("$$$\\frac{", &["7"]));
        assert!(!reveals("((((((((((((((((((((1", &["1/2"]));
    }
}
