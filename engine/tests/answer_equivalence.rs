//! Answer equivalence: table tests, the shared dev data sets (self-equivalence, reference
//! solution vs ground truth, false positives between different items) and robustness against
//! malformed input.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k2_engine::answer::{compare, equivalent, extract_answer, normalize, Equivalence};
use serde_json::Value;

const SAME: &[(&str, &str)] = &[
    // integers, separators, signs
    ("1,000", "1000"),
    (r"1\,000", "1000"),
    ("1{,}000", "1000"),
    (r"10,\!080", "10080"),
    ("+5", "5"),
    ("-0", "0"),
    ("045", "45"),
    // decimals, fractions, percent
    ("0.5", ".5"),
    ("0.5", "1/2"),
    ("0.5", r"\frac{1}{2}"),
    ("0.5", r"\dfrac12"),
    ("0.5", r"\tfrac{1}{2}"),
    ("0.5", r"50\%"),
    (r"10\%", "10"),
    ("2.50", "2.5"),
    (r"\frac{-3}{4}", r"-\frac{3}{4}"),
    (r"\frac{-3}{4}", "-0.75"),
    (r"\frac{6}{8}", r"\frac34"),
    (r"4\frac{2}{3}", r"\frac{14}{3}"),
    (r"-1\frac12", "-1.5"),
    (r"\$1,000", "1000"),
    (r"\$ 2.50", "2.5"),
    (r"0.\overline{3}", r"0.\overline{3}"),
    (r"\frac{270}7\text{ degrees}", r"\frac{270}{7}"),
    // radicals and constants
    (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"2\sqrt{2}", r"2 \sqrt 2"),
    (r"2\sqrt{2}", "2*sqrt(2)"),
    (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"),
    (r"\pi/2", r"\frac{\pi}{2}"),
    (r"3\pi", r"3 \pi"),
    (r"\sqrt[3]{16}", r"2\sqrt[3]{2}"),
    (r"2 \cdot 3", r"2\times 3"),
    (r"\left(\frac{1}{2}\right)^2", "0.25"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    // symbolic
    ("x^2+2x+1", "(x+1)^2"),
    (r"\cot x", r"\frac{\cos x}{\sin x}"),
    ("(a+5)(b+2)", "ab+2a+5b+10"),
    ("2k+2", "2(k+1)"),
    ("6+9i", "9i+6"),
    // structures
    (r"\{1,2\}", r"\{2,1\}"),
    ("1, 2, 3", "3, 1, 2"),
    ("x=1, x=2", "2, 1"),
    (r"x = 1 \text{ or } x = 2", "1, 2"),
    (r"1 \pm \sqrt{19}", r"1+\sqrt{19}, 1-\sqrt{19}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)"),
    ("[0, 1)", "[0,1)"),
    (r"(2,\infty)", r"(2, \infty)"),
    (
        r"(-\infty, 0] \cup [1, \infty)",
        r"[1,\infty)\cup(-\infty,0]",
    ),
    (
        r"\begin{pmatrix}1\\2\end{pmatrix}",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
    ),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", "(1,2)"),
    (
        r"\begin{bmatrix}\frac12 & 0\\0 & 1\end{bmatrix}",
        r"\begin{pmatrix}0.5&0\\0&1\end{pmatrix}",
    ),
    // wrappers, units, words
    ("$5$", "5"),
    (r"\boxed{5}", "5"),
    (r"5\text{ cm}", "5"),
    (r"\$18", "18"),
    ("18 dollars", "18"),
    (r"5 \mbox{ inches}", "5"),
    (r"145^\circ", "145"),
    (r"30^{\circ}", "30"),
    (r"(3, 90^\circ)", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"\frac{\pi}{6}", "30°"),
    (r"180^\circ", r"\pi"),
    (r"\displaystyle \frac{1}{2}", "0.5"),
    ("7.", "7"),
    ("x = 5", "5"),
    ("y=2x+3", "2x+3"),
    (r"\mathrm{12}", "12"),
    (r"\text{(C)}", "C"),
    (r"\text{(C)}", "(C)"),
    (r"\textbf{(C)}", "c"),
    (r"\text{Evelyn}", "evelyn"),
    (r"\textbf{(540)}", "540"),
    ("52_8", "52_{8}"),
];

const DIFFERENT: &[(&str, &str)] = &[
    ("1/3", "0.33"),
    ("1/3", "0.333"),
    (r"\frac{\sqrt{3}}{3}", "0.57735"),
    ("(1,2)", "(2,1)"),
    ("2", "-2"),
    (r"\sqrt{2}", "2"),
    (r"x\frac{2}{3}", r"\frac{2}{3}"),
    (r"(4)\frac{2}{3}", r"\frac{14}{3}"),
    ("x+1", "x-1"),
    ("10", "100"),
    ("[0,1)", "[0,1]"),
    ("(0,1)", "[0,1]"),
    ("1, 2", "1, 2, 3"),
    (r"\{1,2\}", r"\{1,3\}"),
    ("2k+2", "2x+2"),
    ("6+9i", "6-9i"),
    (r"\text{Evelyn}", r"\text{Emily}"),
    ("(C)", "(D)"),
    (r"10^{10^{10}}", r"10^{10^{11}}"),
    (r"\pi", "3.14159"),
    (r"90^\circ", r"\frac{\pi}{3}"),
    (r"90^\circ", "1.5707963267948966"),
    ("52_8", "42"),
    ("40_9", "40"),
    ("52_8", "52_9"),
    (r"\infty", r"-\infty"),
    ("1,000", "1,001"),
    (r"2\sqrt{2}", r"2\sqrt{3}"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", "(2,1)"),
];

#[test]
fn equal_pairs_are_equivalent_both_ways() {
    let failures: Vec<String> = SAME
        .iter()
        .filter(|(a, b)| !equivalent(a, b) || !equivalent(b, a))
        .map(|(a, b)| format!("{a:?} vs {b:?}: {:?} / {:?}", compare(a, b), compare(b, a)))
        .collect();
    assert!(
        failures.is_empty(),
        "should be equivalent:\n{}",
        failures.join("\n")
    );
}

#[test]
fn different_pairs_are_not_equivalent() {
    let failures: Vec<String> = DIFFERENT
        .iter()
        .filter(|(a, b)| equivalent(a, b) || equivalent(b, a))
        .map(|(a, b)| format!("{a:?} vs {b:?}"))
        .collect();
    assert!(
        failures.is_empty(),
        "should differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn compare_reports_why() {
    assert_eq!(compare("", "5"), Equivalence::Unparseable);
    assert_eq!(compare("x > 2", "x > 3"), Equivalence::Unparseable);
    assert_eq!(compare("4", "5"), Equivalence::Different);
    assert_eq!(compare("4", "4.0"), Equivalence::Same);
}

#[test]
fn normalized_keys_are_canonical_and_imply_equivalence() {
    assert_eq!(normalize(r"\frac{6}{8}"), "3/4");
    assert_eq!(normalize("1,000"), "1000");
    assert_eq!(normalize(r"\{2,1\}"), normalize(r"\{1, 2\}"));
    assert_eq!(normalize(r"\text{Evelyn}"), "evelyn");
    for (a, b) in SAME.iter().chain(DIFFERENT) {
        if normalize(a) == normalize(b) {
            assert!(equivalent(a, b), "{a:?} and {b:?} share a key but differ");
        }
    }
}

// ---------------------------------------------------------------- shared data

fn data_file(name: &str) -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "missing data file {}: the shared data folder must sit beside the repository \
         (expected /work/shared/data next to /work/main)",
        path.display()
    );
    path
}

fn items(name: &str) -> Vec<Value> {
    let path = data_file(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1))
        })
        .collect()
}

fn field<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or("")
}

/// For each item: is the answer equivalent to itself, and to the final answer extracted from
/// its reference solution? Returns (items, self-equivalent, with extractable answer, agreeing,
/// failures).
fn check_set(name: &str) -> (usize, usize, usize, usize, Vec<String>) {
    let all = items(name);
    let (mut selfsame, mut extracted, mut agree) = (0, 0, 0);
    let mut failures = Vec::new();
    for item in &all {
        let answer = field(item, "answer");
        if equivalent(answer, answer) {
            selfsame += 1;
        } else {
            failures.push(format!(
                "{}: {answer:?} not equivalent to itself",
                field(item, "id")
            ));
        }
        if let Some(found) = extract_answer(field(item, "solution")) {
            extracted += 1;
            if equivalent(&found.text, answer) {
                agree += 1;
            } else {
                failures.push(format!(
                    "{}: solution's {:?} ({:?}) vs answer {answer:?}",
                    field(item, "id"),
                    found.text,
                    found.source
                ));
            }
        }
    }
    println!(
        "{name}: {} items, {selfsame} self-equivalent, {agree}/{extracted} reference answers agree",
        all.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    (all.len(), selfsame, extracted, agree, failures)
}

#[test]
fn math500_reference_boxed_answers_agree() {
    let (n, selfsame, extracted, agree, _) = check_set("math500-dev.jsonl");
    assert_eq!(selfsame, n);
    assert_eq!(extracted, n, "every MATH-500 solution has a final answer");
    assert!(agree * 100 >= extracted * 98, "{agree}/{extracted} agree");
}

#[test]
fn gsm8k_hashes_answers_agree() {
    let (n, selfsame, extracted, agree, failures) = check_set("gsm8k-dev.jsonl");
    assert_eq!(selfsame, n);
    assert_eq!((extracted, agree), (n, n), "{failures:?}");
    // And the raw text after `####` (with its separators) is the same number.
    for item in items("gsm8k-dev.jsonl") {
        let solution = field(&item, "solution");
        let raw = solution.rsplit("####").next().unwrap_or("").trim();
        assert!(
            equivalent(raw, field(&item, "answer")),
            "{}: #### {raw:?} vs {:?}",
            field(&item, "id"),
            field(&item, "answer")
        );
    }
}

#[test]
fn aime_answers_agree() {
    let (n, selfsame, extracted, agree, failures) = check_set("aime2024.jsonl");
    assert_eq!(selfsame, n);
    // One AoPS solution ends without a box (and with the author's name `sepehr2010`); its
    // last standalone number is the answer.
    assert_eq!(agree, extracted, "{failures:?}");
    for item in items("aime2024.jsonl") {
        if let Some(raw) = item.get("answer_raw").and_then(Value::as_str) {
            assert!(equivalent(raw, field(&item, "answer")), "{raw:?}");
        }
    }
}

#[test]
fn different_math500_answers_are_not_equivalent() {
    let mut answers: Vec<String> = items("math500-dev.jsonl")
        .iter()
        .map(|i| field(i, "answer").to_owned())
        .collect();
    answers.sort();
    answers.dedup();
    let mut pairs = 0;
    let mut positives = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        for b in &answers[i + 1..] {
            pairs += 1;
            if equivalent(a, b) {
                positives.push(format!(
                    "{a:?} ~ {b:?}  [{} | {}]",
                    normalize(a),
                    normalize(b)
                ));
            }
        }
    }
    // Pairs with the same key are the same value written differently (`30` and `30^\circ`).
    // Judged equal with different keys: a genuinely equal pair would have to be listed here.
    let expected: &[&str] = &[];
    let false_positives: Vec<&String> = positives
        .iter()
        .filter(|p| !p.split_once("  [").is_some_and(|(_, k)| same_keys(k)))
        .filter(|p| !expected.iter().any(|e| p.starts_with(e)))
        .collect();
    println!(
        "math500: {} distinct answers, {pairs} pairs, {} judged equivalent, {} false positives",
        answers.len(),
        positives.len(),
        false_positives.len()
    );
    for p in &positives {
        println!("  {p}");
    }
    assert!(false_positives.is_empty(), "{false_positives:#?}");
}

/// `"K1 | K2]"` with K1 == K2.
fn same_keys(bracketed: &str) -> bool {
    let inner = bracketed.trim_end_matches(']');
    inner.split_once(" | ").is_some_and(|(a, b)| a == b)
}

// ---------------------------------------------------------------- robustness

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_slice(rng: &mut Rng, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = rng.below(chars.len() + 1);
    let len = rng.below(120);
    chars[start..(start + len).min(chars.len())]
        .iter()
        .collect()
}

const SOUP: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    r"\{",
    r"\}",
    r"\frac",
    r"\dfrac",
    r"\sqrt",
    r"\sqrt[",
    "^",
    "_",
    r"\left(",
    r"\right)",
    r"\boxed{",
    r"\text{",
    ",",
    "=",
    "1",
    "0",
    "9",
    ".",
    "x",
    "e",
    r"\pi",
    "-",
    "+",
    "/",
    "*",
    "!",
    "|",
    r"\pm",
    "%",
    r"\%",
    r"\begin{pmatrix}",
    "&",
    r"\\",
    r"\end{pmatrix}",
    r"\cup",
    r"\infty",
    "10^{10^{10}}",
    "99999999999999999999999999",
    r"\cdot",
    r"\sin",
    r"\log_",
    " ",
    "$",
    "####",
    "<answer>",
    "é",
    "∞",
    r"\circ",
    "x=",
    "_{8}",
];

fn soup(rng: &mut Rng) -> String {
    let n = rng.below(40);
    (0..n).map(|_| SOUP[rng.below(SOUP.len())]).collect()
}

fn exercise(a: &str, b: &str) {
    let _ = compare(a, b);
    let _ = compare(a, a);
    let _ = normalize(a);
    let _ = extract_answer(a);
}

#[test]
fn malformed_input_never_panics_or_hangs() {
    let math = items("math500-dev.jsonl");
    let texts: Vec<String> = math
        .iter()
        .flat_map(|i| {
            [
                field(i, "answer").to_owned(),
                field(i, "solution").to_owned(),
            ]
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for round in 0..4000 {
        let a = if round % 2 == 0 {
            let source = rng.below(texts.len());
            random_slice(&mut rng, &texts[source])
        } else {
            soup(&mut rng)
        };
        let b = texts[rng.below(texts.len())].clone();
        exercise(&a, &b);
        exercise(&a, &soup(&mut rng));
    }
    // Pathological shapes: deep nesting, long chains, huge numbers and exponents.
    let deep = [
        "{".repeat(100_000),
        "(".repeat(50_000) + "1" + &")".repeat(50_000),
        r"\sqrt{".repeat(20_000),
        r"\frac{".repeat(20_000) + "1",
        "-".repeat(100_000) + "1",
        "1+".repeat(50_000) + "1",
        "2^".repeat(10_000) + "2",
        "9".repeat(100_000),
        format!("({})", "1,".repeat(20_000)),
        r"\text{".repeat(10_000),
        r"\{".repeat(10_000),
        "x^{".repeat(1000) + &"}".repeat(1000),
        r"2^{2^{2^{2^{2^{2^{2}}}}}}".to_owned(),
        "100!".to_owned(),
        r"\frac{1}".to_owned(),
        r"\boxed{".to_owned(),
        String::new(),
    ];
    for d in &deep {
        exercise(d, d);
        exercise(d, "1");
    }
    let elapsed = started.elapsed();
    println!(
        "robustness: 8000 random comparisons + {} pathological inputs in {elapsed:?}",
        deep.len()
    );
    assert!(elapsed < Duration::from_secs(60), "too slow: {elapsed:?}");
}
