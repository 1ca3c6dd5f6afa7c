//! "Check my work", measured (issue 27 part 3): the first wrong step found by
//! `k2_answer::work::check_work` in corrupted gsm8k worked solutions.
//!
//! ```text
//! cargo run --release -p k2-answer --example work_bench -- /work/shared/data/gsm8k-dev.jsonl [SEED]
//! ```
//!
//! Each item's worked solution (`solution`, its `<<a*b=c>>` annotations giving every
//! intermediate result) becomes a student's work: the annotations are removed, the `####`
//! line dropped, so the last step is the last calculation. One calculation `k` is chosen per
//! item and variant (a seeded generator, so every run makes the same variants):
//! - **(i) wrong result**: `k`'s result changed (±1, ±2, ±10, ×2, ×10, the first of these in
//!   a seeded order that changes it and stays positive), later steps untouched;
//! - **(ii) carried forward**: the same change, and every later calculation that uses the old
//!   value recomputed with the new one (their results and the final answer change with it);
//! - **(iii) wrong operand**: in a calculation the solution writes out (`a*b = <<…>>c`, not
//!   just its result), one number changed the same way, the result
//!   recomputed (the arithmetic is right) and carried forward; only changes that take the
//!   result off the reference's values are kept (the definition of the variant).
//!
//! A changed calculation is written `expr = result` with the annotation's expression; an
//! unchanged one keeps the solution's words.
//!
//! The true first wrong step is the step (as `split_steps` reads the work) holding the first
//! changed text. Scored: the checker with the verified solution as reference (basis
//! `answer_key`), the checker with arithmetic only (no reference), and the baselines "always
//! the first step" and "always the last step"; a "no wrong step" answer counts as a miss. The
//! false-alarm rate is the share of uncorrupted solutions where a wrong step is reported.

use std::process::ExitCode;

use k2_answer::work::{check_work, split_steps, value_of, Reference};
use k2_protocol::{CheckBasis, WorkCertainty};
use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    id: String,
    problem: String,
    answer: String,
    solution: String,
}

/// One `<<expr=result>>` annotation and the text around it, by byte ranges in its line.
#[derive(Clone, Debug)]
struct Calc {
    expr: String,
    result: f64,
    /// Where the visible calculation starts (`16 - 3 - 4 = `), or the annotation when the
    /// solution shows only the result.
    replace_from: usize,
    /// The end of the visible result after the annotation.
    replace_to: usize,
    /// Whether the solution shows the calculation (`a*b = <<…>>c`) or only the result.
    shown: bool,
}

struct Line {
    text: String,
    calcs: Vec<Calc>,
}

/// splitmix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parse_line(line: &str) -> Line {
    let mut calcs = Vec::new();
    let mut search = 0;
    while let Some(open) = line[search..].find("<<").map(|i| i + search) {
        let Some(close) = line[open..].find(">>").map(|i| i + open) else {
            break;
        };
        let inner = &line[open + 2..close];
        let Some((expr, result)) = inner.rsplit_once('=') else {
            search = close + 2;
            continue;
        };
        let Some(result) = value_of(result) else {
            search = close + 2;
            continue;
        };
        // The visible result: `$`, digits, commas, a decimal point followed by a digit.
        let after = &line[close + 2..];
        let bytes = after.as_bytes();
        let mut end = usize::from(bytes.first() == Some(&b'$'));
        while end < bytes.len()
            && (bytes[end].is_ascii_digit()
                || (matches!(bytes[end], b',' | b'.')
                    && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)))
        {
            end += 1;
        }
        // The visible calculation: arithmetic characters back from a `=` before `<<`.
        let before = line[..open].trim_end_matches([' ', '$']);
        let (replace_from, shown) = match before.strip_suffix('=') {
            Some(lhs) => {
                let start = lhs
                    .char_indices()
                    .rev()
                    .take_while(|(_, c)| "0123456789.,+-*/x×÷–()$ ".contains(*c))
                    .last()
                    .map_or(lhs.len(), |(i, _)| i);
                // It starts at a number, a bracket or a dollar sign (not at `* .5` of
                // `$1000/month * .5 =`).
                let start = lhs[start..]
                    .find(|c: char| c.is_ascii_digit() || "($.".contains(c))
                    .map_or(lhs.len(), |i| start + i);
                let has_digit = lhs[start..].chars().any(|c| c.is_ascii_digit());
                if has_digit && start >= search {
                    (start, true)
                } else {
                    (open, false)
                }
            }
            None => (open, false),
        };
        calcs.push(Calc {
            expr: expr.to_owned(),
            result,
            replace_from,
            replace_to: close + 2 + end,
            shown,
        });
        search = close + 2 + end;
    }
    Line {
        text: line.to_owned(),
        calcs,
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Number literals of an annotation's expression, by byte range.
fn literals(expr: &str) -> Vec<(usize, usize, f64)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if let Ok(v) = expr[start..i].parse::<f64>() {
                out.push((start, i, v));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `expr` with every literal equal to a changed value replaced by its new value.
fn substitute(expr: &str, changed: &[(f64, f64)]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (s, e, v) in literals(expr) {
        if let Some((_, new)) = changed.iter().find(|(old, _)| close(*old, v)) {
            out.push_str(&expr[at..s]);
            out.push_str(&fmt_num(*new));
            at = e;
        }
    }
    out.push_str(&expr[at..]);
    out
}

/// A change of `v` that keeps its sign and actually changes it, chosen by `rng`.
fn perturb(v: f64, rng: &mut Rng, off_path: impl Fn(f64) -> bool) -> Option<f64> {
    let mut options: Vec<f64> = vec![
        v + 1.0,
        v - 1.0,
        v + 2.0,
        v - 2.0,
        v + 10.0,
        v - 10.0,
        v * 2.0,
        v * 10.0,
    ];
    // A seeded shuffle.
    for i in (1..options.len()).rev() {
        options.swap(i, rng.below(i + 1));
    }
    options
        .into_iter()
        .find(|&n| !close(n, v) && (v <= 0.0 || n > 0.0) && off_path(n))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    WrongResult,
    CarriedForward,
    WrongOperand,
}

/// A corrupted work and the byte offset of its first changed text.
fn corrupt(
    lines: &[Line],
    variant: Variant,
    rng: &mut Rng,
    reference: &Reference,
) -> Option<(String, usize)> {
    // A wrong operand is put in a calculation the solution writes out (`a*b = c`), so that the
    // work shows the changed calculation and nothing else.
    let all: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .flat_map(|(l, line)| {
            (0..line.calcs.len())
                .filter(move |&c| variant != Variant::WrongOperand || line.calcs[c].shown)
                .map(move |c| (l, c))
        })
        .collect();
    if all.is_empty() {
        return None;
    }
    let (kl, kc) = all[rng.below(all.len())];
    let target = &lines[kl].calcs[kc];
    // New (expression, result) for each changed calculation.
    let mut new: Vec<Vec<Option<(String, f64)>>> =
        lines.iter().map(|l| vec![None; l.calcs.len()]).collect();
    let mut changed: Vec<(f64, f64)> = Vec::new();
    match variant {
        Variant::WrongResult | Variant::CarriedForward => {
            let r = perturb(target.result, rng, |_| true)?;
            new[kl][kc] = Some((target.expr.clone(), r));
            changed.push((target.result, r));
        }
        Variant::WrongOperand => {
            let lits = literals(&target.expr);
            if lits.is_empty() {
                return None;
            }
            let (s, e, v) = lits[rng.below(lits.len())];
            let mut found = None;
            for _ in 0..4 {
                let Some(nv) = perturb(v, rng, |_| true) else {
                    continue;
                };
                let expr = format!("{}{}{}", &target.expr[..s], fmt_num(nv), &target.expr[e..]);
                let Some(r) = value_of(&expr) else { continue };
                let shown_r = value_of(&fmt_num(r)).unwrap_or(r);
                if !close(r, target.result) && !reference_has(reference, &fmt_num(shown_r)) {
                    found = Some((expr, shown_r));
                    break;
                }
            }
            let (expr, r) = found?;
            new[kl][kc] = Some((expr, r));
            changed.push((target.result, r));
        }
    }
    if variant != Variant::WrongResult {
        let start = kl * 1000 + kc;
        for (l, line) in lines.iter().enumerate() {
            for (c, calc) in line.calcs.iter().enumerate() {
                if l * 1000 + c <= start {
                    continue;
                }
                let expr = substitute(&calc.expr, &changed);
                if expr == calc.expr {
                    continue;
                }
                let r = value_of(&expr)?;
                let r = value_of(&fmt_num(r)).unwrap_or(r);
                new[l][c] = Some((expr, r));
                if !close(r, calc.result) {
                    changed.push((calc.result, r));
                }
            }
        }
    }
    let mut text = String::new();
    let mut first = None;
    for (l, line) in lines.iter().enumerate() {
        let mut at = 0;
        for (c, calc) in line.calcs.iter().enumerate() {
            match &new[l][c] {
                Some((expr, r)) => {
                    text.push_str(&line.text[at..calc.replace_from]);
                    if first.is_none() {
                        first = Some(text.len());
                    }
                    // A written-out calculation is rewritten whole (a wrong operand is only
                    // put in those); where the solution showed only the result, only the
                    // result changes.
                    if calc.shown {
                        text.push_str(&format!("{} = {}", expr.replace('*', " * "), fmt_num(*r)));
                    } else {
                        text.push_str(&fmt_num(*r));
                    }
                }
                None => {
                    text.push_str(&line.text[at..calc.replace_from]);
                    text.push_str(&strip_annotation(
                        &line.text[calc.replace_from..calc.replace_to],
                    ));
                }
            }
            at = calc.replace_to;
        }
        text.push_str(&line.text[at..]);
        text.push('\n');
    }
    Some((text, first?))
}

fn reference_has(reference: &Reference, number: &str) -> bool {
    // A one-step work stating the number: off the path exactly when the checker flags it.
    check_work(number, Some(reference))
        .map(|c| {
            c.first_wrong
                .is_none_or(|w| w.kind != k2_protocol::WorkIssueKind::DiffersFromSolution)
        })
        .unwrap_or(true)
}

fn strip_annotation(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find("<<") {
        out.push_str(&rest[..open]);
        match rest[open..].find(">>") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn clean_work(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| strip_annotation(&l.text) + "\n")
        .collect()
}

#[derive(Default)]
struct Score {
    n: usize,
    checker: usize,
    checker_sure: usize,
    checker_none: usize,
    arithmetic_only: usize,
    first: usize,
    last: usize,
}

fn pct(a: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / n as f64)
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--clean") {
        return clean_solutions(args.collect());
    }
    if first.as_deref() == Some("--real") {
        return real_solutions(args.collect());
    }
    let Some(path) = first else {
        eprintln!("usage: work_bench GSM8K.jsonl [SEED] | work_bench --clean SET.jsonl...");
        return ExitCode::from(2);
    };
    let seed: u64 = match args.next().map(|s| s.parse()) {
        None => 27,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("SEED must be a number: {e}");
            return ExitCode::from(2);
        }
    };
    let data = match std::fs::read_to_string(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let verbose = std::env::var_os("WORK_BENCH_VERBOSE").is_some();
    let variants = [
        ("(i) wrong result, not carried", Variant::WrongResult),
        (
            "(ii) wrong result, carried forward",
            Variant::CarriedForward,
        ),
        (
            "(iii) wrong operand, arithmetic right",
            Variant::WrongOperand,
        ),
    ];
    let mut scores: Vec<Score> = variants.iter().map(|_| Score::default()).collect();
    let (mut items, mut alarms, mut alarms_arith, mut final_right) = (0, 0, 0, 0);
    let mut skipped = vec![0usize; variants.len()];
    for (n, row) in data
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let item: Item = match serde_json::from_str(row) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{path}:{}: {e}", n + 1);
                return ExitCode::from(2);
            }
        };
        items += 1;
        let lines: Vec<Line> = item
            .solution
            .lines()
            .filter(|l| !l.trim_start().starts_with("####") && !l.trim().is_empty())
            .map(parse_line)
            .collect();
        let reference = Reference::new(
            &item.problem,
            &item.solution,
            Some(&item.answer),
            CheckBasis::AnswerKey,
        );
        let clean = clean_work(&lines);
        match check_work(&clean, Some(&reference)) {
            Ok(c) => {
                if c.final_answer == k2_protocol::CheckVerdict::Right {
                    final_right += 1;
                }
                if let Some(w) = c.first_wrong {
                    alarms += 1;
                    if verbose {
                        eprintln!("ALARM {}: {}\n{clean}", item.id, w.message);
                    }
                }
            }
            Err(e) => eprintln!("{}: {e}", item.id),
        }
        if check_work(&clean, None).is_ok_and(|c| c.first_wrong.is_some()) {
            alarms_arith += 1;
        }
        for (v, (name, variant)) in variants.iter().enumerate() {
            let mut rng = Rng(seed ^ (v as u64 + 1).wrapping_mul(0x1000_0000_0001) ^ n as u64);
            let Some((work, offset)) = corrupt(&lines, *variant, &mut rng, &reference) else {
                skipped[v] += 1;
                continue;
            };
            let steps = split_steps(&work);
            let Some(truth) = steps.iter().position(|s| offset < s.end.max(s.start + 1)) else {
                skipped[v] += 1;
                continue;
            };
            let truth = truth + 1;
            let s = &mut scores[v];
            s.n += 1;
            s.first += usize::from(truth == 1);
            s.last += usize::from(truth == steps.len());
            match check_work(&work, Some(&reference)) {
                Ok(c) => match c.first_wrong {
                    Some(w) if w.step == truth => {
                        if verbose
                            && *variant == Variant::WrongOperand
                            && w.certainty == WorkCertainty::Sure
                        {
                            eprintln!("SURE {name} {}: {}\n{work}", item.id, w.message);
                        }
                        s.checker += 1;
                        s.checker_sure += usize::from(w.certainty == WorkCertainty::Sure);
                    }
                    Some(w) => {
                        if verbose {
                            eprintln!(
                                "MISS {name} {}: truth {truth}, said {}\n{work}",
                                item.id, w.message
                            );
                        }
                    }
                    None => {
                        s.checker_none += 1;
                        if verbose {
                            eprintln!("NONE {name} {}: truth {truth}\n{work}", item.id);
                        }
                    }
                },
                Err(e) => eprintln!("{}: {e}", item.id),
            }
            if check_work(&work, None)
                .ok()
                .and_then(|c| c.first_wrong)
                .is_some_and(|w| w.step == truth)
            {
                s.arithmetic_only += 1;
            }
        }
    }
    println!("gsm8k worked solutions: {items} (seed {seed})");
    println!();
    println!("| variant | n | checker (reference) | of which sure | no wrong step found | checker (arithmetic only) | always first step | always last step |");
    println!("|---|---|---|---|---|---|---|---|");
    for ((name, _), s) in variants.iter().zip(&scores) {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            s.n,
            pct(s.checker, s.n),
            pct(s.checker_sure, s.n),
            pct(s.checker_none, s.n),
            pct(s.arithmetic_only, s.n),
            pct(s.first, s.n),
            pct(s.last, s.n)
        );
    }
    println!();
    println!(
        "uncorrupted: false alarms {} with the reference, {} arithmetic only; final answer read as right {}",
        pct(alarms, items),
        pct(alarms_arith, items),
        pct(final_right, items)
    );
    println!("skipped (no calculation to corrupt, or no off-path operand change): {skipped:?}");
    ExitCode::SUCCESS
}

/// `--clean SET.jsonl...`: the share of worked solutions, as they are, where the arithmetic
/// check (no reference) names a wrong step: false alarms on a set's own solutions (right by
/// construction, unless the source has a slip). Solutions are read as a student would type them (`\\boxed`, LaTeX and all).
fn clean_solutions(paths: Vec<String>) -> ExitCode {
    #[derive(Deserialize)]
    struct Worked {
        id: String,
        solution: String,
    }
    let verbose = std::env::var_os("WORK_BENCH_VERBOSE").is_some();
    for path in paths {
        let data = match std::fs::read_to_string(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                return ExitCode::from(2);
            }
        };
        let (mut n, mut alarms, mut steps) = (0, 0, 0);
        for row in data.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(item) = serde_json::from_str::<Worked>(row) else {
                eprintln!("{path}: a line is not a worked solution");
                return ExitCode::from(2);
            };
            let Ok(check) = check_work(&item.solution, None) else {
                continue;
            };
            n += 1;
            steps += check.steps;
            if let Some(w) = check.first_wrong {
                alarms += 1;
                if verbose {
                    eprintln!("ALARM {}: {}\n  {}", item.id, w.message, w.text);
                }
            }
        }
        println!(
            "{path}: {n} worked solutions ({steps} steps), a wrong step named (arithmetic only) \
             in {}",
            pct(alarms, n)
        );
    }
    ExitCode::SUCCESS
}

/// `--real GSM8K.jsonl SOLUTIONS.jsonl`: solutions written by a model (`id`, `solution`), each
/// checked against the GSM8K worked solution of the same `id`; prints what the checker says
/// about each, for a person to compare with the solution (no ground truth is assumed).
fn real_solutions(paths: Vec<String>) -> ExitCode {
    #[derive(Deserialize)]
    struct Written {
        id: String,
        solution: String,
    }
    let [gsm8k, written] = paths.as_slice() else {
        eprintln!("usage: work_bench --real GSM8K.jsonl SOLUTIONS.jsonl");
        return ExitCode::from(2);
    };
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|e| eprintln!("cannot read {path}: {e}"))
    };
    let (Ok(gsm8k), Ok(written)) = (read(gsm8k), read(written)) else {
        return ExitCode::from(2);
    };
    let items: Vec<Item> = gsm8k
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for row in written.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(w) = serde_json::from_str::<Written>(row) else {
            eprintln!("a line is not a written solution");
            return ExitCode::from(2);
        };
        let Some(item) = items.iter().find(|i| i.id == w.id) else {
            continue;
        };
        let reference = Reference::new(
            &item.problem,
            &item.solution,
            Some(&item.answer),
            CheckBasis::AnswerKey,
        );
        match check_work(&w.solution, Some(&reference)) {
            Ok(c) => println!(
                "{}: {} steps, final answer {}, {}",
                w.id,
                c.steps,
                c.final_answer.as_str(),
                c.first_wrong
                    .map_or("no wrong step".to_owned(), |f| format!(
                        "step {} {} {}: {}",
                        f.step,
                        f.kind.as_str(),
                        f.certainty.as_str(),
                        f.text.replace('\n', " ")
                    ))
            ),
            Err(e) => println!("{}: {e}", w.id),
        }
    }
    ExitCode::SUCCESS
}
