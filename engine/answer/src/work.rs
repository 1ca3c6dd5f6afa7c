//! "Check my work": finds the **first wrong step** of a student's own worked solution and says
//! what is wrong there without giving the answer away. The one definition, used by
//! `k2 solve --work`, the history's `check_work` and the wasm UI.
//!
//! How a piece of work is read:
//! 1. **Steps** ([`split_steps`]): the student's lines (a `$$…$$` or `\[…\]` block spread over
//!    several lines is one step); work typed as one paragraph is cut into sentences instead.
//!    A leading `Step 2:` or `2.` label is not part of the step.
//! 2. **Calculations**: each step is cleaned (`$` and `$$…$$`, `\(…\)`, `\[…\]` dropped, the
//!    latter three ending a run; `\times`, `\cdot`, `×`, `x` between numbers, `times` → `*`;
//!    `\div`, `÷`, `divided by` → `/`; `1,000` → `1000`; `20%` → `(20/100)`, `% of` → `% *`;
//!    `\text{…}` read as words; unit words between a number and an operator dropped, so
//!    `20 miles + 15 miles = 25 miles` reads `20 + 15 = 25`). A *chain* is a run of
//!    mathematics between words containing `=` (or `≈`), like `3*4 = 12 = 6+6`; other words
//!    (units, names) end a run, so `Janet sells 16 - 3 - 4 = 9 eggs` holds the chain
//!    `16 - 3 - 4 = 9`. Sides with letters (algebra) are not evaluated, nor is a side that a
//!    name touches or that a word or a bracket cut (see `cut_off`: `f(0) = …`, `A_1 = 4`,
//!    `half of 48 = 24` if `half of` were not understood, `= 4 \times v`).
//! 3. **Arithmetic** (certainty `sure`): neighbouring sides of a chain that both evaluate to
//!    numbers must agree, exactly for rationals. Rounding the student states is tolerated:
//!    a side written as a decimal with `d` places agrees with a value within half a unit of
//!    its last place (`10/3 = 3.33`, money to the cent), because writing fewer places *is*
//!    saying "rounded"; with `≈` an integer rounds too.
//! 4. **Against a verified solution** ([`Reference`], certainty `unsure`): every chain's result
//!    (its last side), or in a step without a chain every number stated, must be among the
//!    reference's values: every number in the verified solution (and the values of its
//!    equations) and in the problem (digits, number words, percentages also as fractions).
//!    One that is not is "off the verified path". Another correct route can leave that path,
//!    so such a result is not flagged when the work's final answer is the verified answer and
//!    a later step uses the result (an intermediate of the student's own route). Present, not
//!    derivable: a value one more operation away from the reference's is off the path.
//! 5. **Final answer**: the last result of the work, compared with the verified answer by the
//!    equivalence checker; when no step was found wrong but it differs, the last step is
//!    reported (`final_answer`, `sure`).
//!
//! What it cannot decide: a step whose claim is not numeric (algebra, a wrong method with
//! no wrong number, a misread question whose numbers all appear in the solution), and
//! factorials (`!` ends a run, since prose uses it too). Messages quote only the student's own
//! text and never a correct value.

use k2_protocol::{
    CandidateView, CheckBasis, CheckVerdict, RunView, WorkCertainty, WorkCheck, WorkIssueKind,
    WrongStep,
};

use crate::check::{confident_answer, KnownAnswers, RunEvidence};
use crate::hints::Withheld;

use crate::expr::{self, Value};
use crate::rational::Rational;

/// Work longer than this is refused (a page of steps is a few thousand characters).
pub const MAX_WORK_CHARS: usize = 20_000;
/// At most this many steps are read.
pub const MAX_STEPS: usize = 200;

/// Why a piece of work could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkError {
    Empty,
    TooLong { chars: usize },
    TooManySteps { steps: usize },
}

impl std::fmt::Display for WorkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkError::Empty => write!(f, "the work is empty: type your steps, one per line"),
            WorkError::TooLong { chars } => write!(
                f,
                "the work is {chars} characters long; at most {MAX_WORK_CHARS} are checked"
            ),
            WorkError::TooManySteps { steps } => {
                write!(
                    f,
                    "the work has {steps} steps; at most {MAX_STEPS} are checked"
                )
            }
        }
    }
}

impl std::error::Error for WorkError {}

/// A verified solution's numbers: what a correct step's result may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// `None` when only the answer is known (an answer key without a worked solution).
    values: Option<Vec<f64>>,
    /// The verified solution's text, for the verifier model (`None` with the answer only).
    solution: Option<String>,
    answer: Option<String>,
    basis: CheckBasis,
}

impl Reference {
    /// From the problem, a verified solution's text (a gsm8k worked solution with its
    /// `<<a*b=c>>` annotations, or a run's chosen candidate when the tutor is confident) and
    /// its final answer. `basis` says why it is trusted (`answer_key`, `teacher`, `unanimous`,
    /// `verifier`).
    pub fn new(problem: &str, solution: &str, answer: Option<&str>, basis: CheckBasis) -> Self {
        let mut values = Vec::new();
        for text in [problem, solution] {
            collect_values(&prepare(text), &mut values);
        }
        collect_number_words(problem, &mut values);
        let answer = answer.map(str::trim).filter(|a| !a.is_empty());
        if let Some(a) = answer {
            collect_values(&prepare(a), &mut values);
        }
        values.sort_by(f64::total_cmp);
        values.dedup();
        Reference {
            values: Some(values),
            solution: Some(solution.to_owned()),
            answer: answer.map(str::to_owned),
            basis,
        }
    }

    /// Only a known answer, no worked solution: the steps' arithmetic and the final answer are
    /// checked, no step is "off the path".
    pub fn answer_only(answer: &str, basis: CheckBasis) -> Self {
        Reference {
            values: None,
            solution: None,
            answer: Some(answer.trim().to_owned()).filter(|a| !a.is_empty()),
            basis,
        }
    }

    /// What the steps are checked against (see [`WorkCheck::basis`]).
    pub fn basis(&self) -> CheckBasis {
        self.basis
    }

    /// The verified worked solution's text, when there is one (not with an answer alone).
    pub fn solution(&self) -> Option<&str> {
        self.solution.as_deref()
    }

    /// Whether `v` (written with `decimals` places when it is a literal) is one of the values;
    /// `true` when there are none to compare with.
    fn contains(&self, v: f64, decimals: Option<u32>) -> bool {
        let Some(values) = &self.values else {
            return true;
        };
        values
            .iter()
            .any(|&r| close(r, v) || decimals.is_some_and(|d| d > 0 && rounds_to(r, v, d)))
    }
}

/// The reference for work on a run's problem, trusted as far as `k2_answer::check` trusts it:
/// - the problem's own worked solution (an imported set's `solution`) with its answer key;
/// - a known answer (`answer_key`, else `teacher`): the solution of a finished candidate that
///   reached it, else that answer alone ([`Reference::answer_only`]);
/// - else the chosen candidate's solution when the tutor is confident in the run's answer
///   ([`confident_answer`]: `unanimous` or `verifier`);
/// - else `None`: arithmetic only.
pub fn reference_for_run(
    view: &RunView,
    known: KnownAnswers<'_>,
    worked_solution: Option<&str>,
) -> Option<Reference> {
    let problem = view.request.as_ref().map_or("", |r| r.problem.as_str());
    if let Some(worked) = worked_solution.filter(|w| !w.trim().is_empty()) {
        return Some(Reference::new(
            problem,
            worked,
            known.answer_key,
            CheckBasis::AnswerKey,
        ));
    }
    let text = |c: &CandidateView| {
        if c.answer_text.trim().is_empty() {
            c.reasoning.clone()
        } else {
            c.answer_text.clone()
        }
    };
    let known_answer = [
        (known.answer_key, CheckBasis::AnswerKey),
        (known.teacher, CheckBasis::Teacher),
    ]
    .into_iter()
    .find_map(|(a, basis)| Some((a.map(str::trim).filter(|a| !a.is_empty())?, basis)));
    if let Some((answer, basis)) = known_answer {
        let reached = view.candidates.iter().find(|c| {
            c.finished.as_ref().is_some_and(|o| {
                o.finish.is_complete()
                    && o.answer
                        .as_deref()
                        .is_some_and(|a| crate::equivalent(a, answer))
            })
        });
        return Some(match reached {
            Some(c) => Reference::new(problem, &text(c), Some(answer), basis),
            None => Reference::answer_only(answer, basis),
        });
    }
    let evidence = RunEvidence::from_view(view);
    let (answer, basis) = confident_answer(&evidence)?;
    let chosen = view.candidates.get(view.final_answer.as_ref()?.candidate)?;
    Some(Reference::new(problem, &text(chosen), Some(answer), basis))
}

/// Whether the numbers could not decide where the work goes wrong, so that the verifier model
/// is worth asking (issue 27: "by the verifier model where numbers cannot decide"): no step
/// was found wrong and the final answer is not verified right (no verified answer, no number
/// to compare, work without numbers), or only the final answer is known wrong (every step
/// holds, so the wrong method or misread question is somewhere the numbers do not show).
/// Where arithmetic or the verified path found a step, the model is not asked.
pub fn needs_model_review(check: &WorkCheck) -> bool {
    match &check.first_wrong {
        Some(w) => w.kind == WorkIssueKind::FinalAnswer,
        None => check.final_answer != CheckVerdict::Right,
    }
}

/// What the verifier model's words must not reveal: every candidate's answer, the known
/// answers and the value of the unknown the problem asks for.
pub fn review_withheld(view: &RunView, known: KnownAnswers<'_>) -> Withheld {
    let problem = view.request.as_ref().map_or("", |r| r.problem.as_str());
    let candidates = view
        .candidates
        .iter()
        .filter_map(|c| c.finished.as_ref()?.answer.as_deref());
    let chosen = view.final_answer.as_ref().and_then(|f| f.answer.as_deref());
    Withheld::new(
        candidates
            .chain(chosen)
            .chain(known.answer_key)
            .chain(known.teacher),
    )
    .asking(problem)
}

/// What the verifier model said about a piece of work (`k2_scaffold::work_review`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelReview {
    /// The first step it doubts (1-based) and one screened sentence of what to re-check.
    Doubt { step: usize, advice: String },
    /// It found no wrong step.
    NoneFound,
    /// It was asked, but its reply named no step and no "none" (or stopped before it did).
    Unreadable,
}

/// `check` with the verifier model's review (it was asked: `reviewed_by_model`). A doubted
/// step outside the work counts as unreadable. The summary says it is the model's opinion,
/// not verified.
pub fn with_model_review(
    mut check: WorkCheck,
    steps: &[StepSpan],
    review: ModelReview,
) -> WorkCheck {
    check.reviewed_by_model = true;
    let review = match review {
        ModelReview::Doubt { step, advice } => match step.checked_sub(1).and_then(|i| steps.get(i))
        {
            Some(span) => Some((step, span, advice)),
            None => {
                return with_model_review(check, steps, ModelReview::Unreadable);
            }
        },
        ModelReview::NoneFound => None,
        ModelReview::Unreadable => {
            check.summary.push_str(
                " The verifier model was asked to read your steps too, but its reply could \
                 not be read.",
            );
            return check;
        }
    };
    match review {
        Some((n, span, advice)) => {
            // The model is asked only when no step's arithmetic failed: a calculation in the
            // doubted step is known to hold, so the doubt can only be about the method.
            let calculated = read_step(&span.text)
                .chains
                .iter()
                .any(|c| c.sides.iter().filter(|s| s.value.is_some()).count() >= 2);
            let holds = if calculated {
                "; its arithmetic holds, so check whether it is the calculation the problem needs"
            } else {
                ""
            };
            let doubt = WrongStep {
                step: n,
                text: span.text.clone(),
                kind: WorkIssueKind::ModelDoubt,
                certainty: WorkCertainty::Unsure,
                message: format!(
                    "Step {n}: the verifier model doubts this step (its opinion, not \
                     verified{holds}): {}",
                    advice.trim()
                ),
            };
            check.summary.push(' ');
            check.summary.push_str(&doubt.message);
            check.model_doubt = Some(doubt);
        }
        None => check.summary.push_str(
            " The verifier model read your steps too and doubted none (its opinion, not \
             verified).",
        ),
    }
    check
}

/// The value of a calculation without letters (`9 \times 2`, `80,000*1.5`, `20%`), read as
/// the checker reads one side of a step.
pub fn value_of(text: &str) -> Option<f64> {
    evaluate(prepare(text).trim()).map(Value::to_f64)
}

/// One step as written: its text and where it is in the work (byte range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpan {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// The student's steps (see the module's documentation).
pub fn split_steps(work: &str) -> Vec<StepSpan> {
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut offset = 0;
    let mut open: Option<usize> = None;
    for line in work.split_inclusive('\n') {
        let (start, end) = (offset, offset + line.trim_end().len());
        offset += line.len();
        let toggles =
            line.matches("$$").count() % 2 == 1 || (line.contains("\\[") != line.contains("\\]"));
        match (open, toggles) {
            (None, true) => open = Some(start),
            (Some(s), true) => {
                lines.push((s, end));
                open = None;
            }
            (Some(_), false) => {}
            (None, false) => lines.push((start, end)),
        }
    }
    if let Some(s) = open {
        lines.push((s, work.trim_end().len().max(s)));
    }
    let lines: Vec<(usize, usize)> = lines
        .into_iter()
        .filter(|&(s, e)| !work[s..e].trim().is_empty())
        .collect();
    let pieces = if lines.len() == 1 {
        sentences(work, lines[0])
    } else {
        lines
    };
    pieces
        .into_iter()
        .filter_map(|(s, e)| {
            let raw = &work[s..e];
            let lead = raw.len() - raw.trim_start().len();
            let text = raw.trim();
            (!text.is_empty()).then(|| StepSpan {
                text: text.to_owned(),
                start: s + lead,
                end: s + lead + text.len(),
            })
        })
        .collect()
}

/// Sentences of one line: cut after `.`, `?`, `!` or `;` followed by a space.
fn sentences(work: &str, (start, end): (usize, usize)) -> Vec<(usize, usize)> {
    let text = &work[start..end];
    let mut out = Vec::new();
    let mut from = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'?' | b'!' | b';')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_whitespace)
        {
            out.push((start + from, start + i + 1));
            from = i + 1;
        }
    }
    out.push((start + from, end));
    out
}

/// One side of a chain.
#[derive(Debug, Clone)]
struct Side {
    text: String,
    value: Option<Value>,
    /// Places after the point when the side is a plain number literal.
    decimals: Option<u32>,
}

/// A chain `a = b ≈ c` in one run of mathematics.
#[derive(Debug, Clone)]
struct Chain {
    sides: Vec<Side>,
    /// `approx[i]`: the relation between sides `i` and `i + 1` is `≈`.
    approx: Vec<bool>,
}

/// What one step says, read.
#[derive(Debug, Default)]
struct StepReading {
    chains: Vec<Chain>,
    /// Numbers outside any chain, with their text and places.
    stated: Vec<(String, f64, Option<u32>)>,
}

impl StepReading {
    /// The step's results: each chain's last evaluated side, else the numbers it states.
    fn results(&self) -> Vec<(String, f64, Option<u32>)> {
        let from_chains: Vec<_> = self
            .chains
            .iter()
            .filter_map(|c| c.sides.iter().rev().find(|s| s.value.is_some()))
            .filter_map(|s| Some((s.text.clone(), s.value?.to_f64(), s.decimals)))
            .collect();
        if from_chains.is_empty() {
            self.stated.clone()
        } else {
            from_chains
        }
    }

    /// Every number the step writes: the literals of its chains and the numbers it states
    /// (`3 weeks × 180 meters/week` uses 180 even where the units break the chain).
    fn operands(&self) -> Vec<f64> {
        let mut out: Vec<f64> = self.stated.iter().map(|(_, v, _)| *v).collect();
        for chain in &self.chains {
            for side in &chain.sides {
                collect_literals(&side.text, &mut out);
            }
        }
        out
    }
}

/// Checks `work` against `reference` (a verified solution), or its arithmetic only.
pub fn check_work(work: &str, reference: Option<&Reference>) -> Result<WorkCheck, WorkError> {
    let chars = work.chars().count();
    if chars > MAX_WORK_CHARS {
        return Err(WorkError::TooLong { chars });
    }
    let steps = split_steps(work);
    if steps.is_empty() {
        return Err(WorkError::Empty);
    }
    if steps.len() > MAX_STEPS {
        return Err(WorkError::TooManySteps { steps: steps.len() });
    }
    let readings: Vec<StepReading> = steps.iter().map(|s| read_step(&s.text)).collect();
    let basis = reference.map_or(CheckBasis::Unsure, |r| r.basis);

    // The work's final result: the last result of the last step that has one.
    let last = readings
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, r)| r.results().pop().map(|res| (i, res)));
    let final_answer = match (reference.and_then(|r| r.answer.as_deref()), &last) {
        (Some(answer), Some((_, (text, value, _)))) => {
            let as_text = number_text(*value);
            if crate::equivalent(text, answer) || crate::equivalent(&as_text, answer) {
                CheckVerdict::Right
            } else {
                CheckVerdict::Wrong
            }
        }
        _ => CheckVerdict::Unsure,
    };

    let mut first_wrong = None;
    'steps: for (i, reading) in readings.iter().enumerate() {
        let n = i + 1;
        if let Some(message) = arithmetic_error(reading) {
            first_wrong = Some(WrongStep {
                step: n,
                text: steps[i].text.clone(),
                kind: WorkIssueKind::Arithmetic,
                certainty: WorkCertainty::Sure,
                message: format!("Step {n}: {message}"),
            });
            break;
        }
        let Some(reference) = reference else { continue };
        for (text, value, decimals) in reading.results() {
            if reference.contains(value, decimals) {
                continue;
            }
            let used_later = readings[i + 1..]
                .iter()
                .any(|r| r.operands().iter().any(|&o| close(o, value)));
            if final_answer == CheckVerdict::Right && used_later {
                // An intermediate of the student's own route to the verified answer.
                continue;
            }
            first_wrong = Some(WrongStep {
                step: n,
                text: steps[i].text.clone(),
                kind: WorkIssueKind::DiffersFromSolution,
                certainty: WorkCertainty::Unsure,
                message: format!(
                    "Step {n}: the result {} does not appear in the tutor's verified solution; \
                     check it.",
                    text.trim()
                ),
            });
            break 'steps;
        }
    }
    if first_wrong.is_none() && final_answer == CheckVerdict::Wrong {
        if let Some((i, _)) = last {
            let n = i + 1;
            first_wrong = Some(WrongStep {
                step: n,
                text: steps[i].text.clone(),
                kind: WorkIssueKind::FinalAnswer,
                certainty: WorkCertainty::Sure,
                message: format!(
                    "Step {n}: your last result is not the tutor's verified answer, though \
                     every step before it holds; check that it answers what the question asks."
                ),
            });
        }
    }
    let read_numbers = readings
        .iter()
        .any(|r| !r.chains.is_empty() || !r.stated.is_empty());
    let summary = summary(
        steps.len(),
        read_numbers,
        first_wrong.as_ref(),
        final_answer,
        basis,
    );
    Ok(WorkCheck {
        steps: steps.len(),
        first_wrong,
        final_answer,
        basis,
        summary,
        reviewed_by_model: false,
        model_doubt: None,
    })
}

fn summary(
    steps: usize,
    read_numbers: bool,
    wrong: Option<&WrongStep>,
    final_answer: CheckVerdict,
    basis: CheckBasis,
) -> String {
    let arithmetic_only = basis == CheckBasis::Unsure;
    let mut out = match wrong {
        Some(w) => w.message.clone(),
        // "Every calculation holds" of work without one would sound like a pass.
        None if !read_numbers && steps == 1 => {
            "The step has no number or calculation to check.".to_owned()
        }
        None if !read_numbers => {
            format!("None of the {steps} steps has a number or a calculation to check.")
        }
        None if arithmetic_only => format!(
            "No wrong step found in {steps} step{}: every calculation I could read holds.",
            if steps == 1 { "" } else { "s" }
        ),
        None => format!(
            "No wrong step found in {steps} step{}: every calculation I could read holds and \
             its results appear in the tutor's verified solution.",
            if steps == 1 { "" } else { "s" }
        ),
    };
    if arithmetic_only {
        out.push_str(
            " Only the arithmetic was checked: the tutor has no verified solution to compare \
             your steps with.",
        );
    } else if wrong.is_none_or(|w| w.kind != WorkIssueKind::FinalAnswer) {
        out.push_str(match final_answer {
            CheckVerdict::Right => " Your final answer matches the tutor's verified answer.",
            CheckVerdict::Wrong => " Your final answer does not match the tutor's verified answer.",
            CheckVerdict::Unsure => "",
        });
    }
    out
}

/// The first pair of neighbouring sides that disagree, described with the student's text.
fn arithmetic_error(reading: &StepReading) -> Option<String> {
    for chain in &reading.chains {
        for (i, pair) in chain.sides.windows(2).enumerate() {
            let (a, b) = (&pair[0], &pair[1]);
            let (Some(x), Some(y)) = (a.value, b.value) else {
                continue;
            };
            let approx = chain.approx[i];
            if !agree(x, a.decimals, y, b.decimals, approx) {
                let rel = if approx { "≈" } else { "=" };
                let how = if approx { " even rounded" } else { "" };
                return Some(format!(
                    "{} {rel} {} does not hold{how}; check this calculation.",
                    display_side(&a.text),
                    display_side(&b.text)
                ));
            }
        }
    }
    None
}

/// The student's side, with the cleaning's `*` and `/` shown as the usual signs.
fn display_side(text: &str) -> String {
    text.trim().replace('*', "×").replace('/', "÷")
}

/// Two sides agree: exactly, within floating point for irrational values, or within the
/// rounding a decimal literal states (see the module's documentation).
fn agree(x: Value, dx: Option<u32>, y: Value, dy: Option<u32>, approx: bool) -> bool {
    if let (Value::Exact(p), Value::Exact(q)) = (x, y) {
        if p == q {
            return true;
        }
    } else if close(x.to_f64(), y.to_f64()) {
        return true;
    }
    let stated = |d: Option<u32>| d.filter(|&d| d > 0 || approx);
    let (fx, fy) = (x.to_f64(), y.to_f64());
    stated(dy).is_some_and(|d| rounds_to(fx, fy, d))
        || stated(dx).is_some_and(|d| rounds_to(fy, fx, d))
}

/// `shown` is `value` rounded to `places` decimal places.
fn rounds_to(value: f64, shown: f64, places: u32) -> bool {
    let half = 0.5 * 10f64.powi(-(places.min(12) as i32));
    (value - shown).abs() <= half * (1.0 + 1e-9)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A value as text for the equivalence checker.
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

// ---------------------------------------------------------------------------------------------
// Reading text

/// LaTeX and symbols that mean an operator or nothing, replaced before runs are read.
const REPLACEMENTS: &[(&str, &str)] = &[
    ("\\left", ""),
    ("\\right", ""),
    ("\\displaystyle", ""),
    // Math delimiters end a run (two formulas side by side are not one product); a single
    // `$` may be a currency sign, so it is only a space.
    ("\\(", "\n"),
    ("\\)", "\n"),
    ("\\[", "\n"),
    ("\\]", "\n"),
    ("$$", "\n"),
    ("\\$", " "),
    ("$", " "),
    ("\\\\", " "),
    ("&", " "),
    ("{,}", ""),
    ("\\,", ""),
    ("\\!", ""),
    ("\\;", " "),
    ("\\quad", " "),
    ("\\%", "%"),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("×", "*"),
    ("·", "*"),
    ("⋅", "*"),
    ("∙", "*"),
    ("\\div", "/"),
    ("÷", "/"),
    ("−", "-"),
    ("–", "-"),
    ("\\approx", "≈"),
    ("\\simeq", "≈"),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("^\\circ", ""),
    ("^{\\circ}", ""),
    ("°", ""),
];

/// Words that are operators between numbers (matched whole, any case).
const WORD_OPERATORS: &[(&str, &str)] = &[
    ("divided by", "/"),
    ("multiplied by", "*"),
    ("times", "*"),
    ("plus", "+"),
    ("minus", "-"),
    ("x", "*"),
];

/// Commands whose braced argument is words: read as words, so that they end a run.
const TEXT_COMMANDS: &[&str] = &[
    "\\text",
    "\\textbf",
    "\\textit",
    "\\mathrm",
    "\\mathbf",
    "\\mbox",
    "\\operatorname",
];

/// Commands allowed inside a run of mathematics.
const MATH_COMMANDS: &[&str] = &["\\frac", "\\sqrt", "\\pi"];

/// The cleaned text of a step (see the module's documentation).
fn prepare(text: &str) -> String {
    let mut s = text.to_owned();
    for cmd in TEXT_COMMANDS {
        s = unwrap_text_command(&s, cmd);
    }
    s = drop_environments(&s);
    for (from, to) in REPLACEMENTS {
        s = s.replace(from, to);
    }
    s = drop_thousands_commas(&s);
    for (word, op) in WORD_OPERATORS {
        s = replace_word_between_numbers(&s, word, op);
    }
    s = replace_word(&s, "% of", "% *");
    s = replace_word(&s, "half of", "1/2 *");
    drop_units_between(&replace_glued_x(&s))
}

/// Words that name a unit or a thing between a number and an operator are dropped, so that
/// `20 miles + 15 miles = 25 miles` reads `20 + 15 = 25` and `12 people per school * 4` reads
/// `12 * 4`. Only where the operator is followed by a number, only up to four words, and never
/// a single letter (`2x + 3` keeps its variable) or a function's name.
fn drop_units_between(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        i += 1;
        let after_number = c.is_ascii_digit() || c == '%' || c == ')';
        if !after_number || !chars.get(i).is_some_and(|c| c.is_whitespace()) {
            continue;
        }
        if let Some(end) = unit_words_end(&chars, i) {
            out.push(' ');
            i = end;
        }
    }
    out
}

/// Whether the number at the end of `before` is the last operand of a calculation: an
/// operator comes before it (`20 + 15`, `2 * 7.5`).
fn number_ends_calculation(before: &[char]) -> bool {
    let mut i = before.len();
    while i > 0 && (before[i - 1].is_ascii_digit() || ".%)".contains(before[i - 1])) {
        i -= 1;
    }
    while i > 0 && before[i - 1] == ' ' {
        i -= 1;
    }
    i > 0 && "+-*/".contains(before[i - 1])
}

/// Where the words starting at `from` end, when they are units before an operator and a number.
fn unit_words_end(chars: &[char], from: usize) -> Option<usize> {
    let skip_spaces = |mut j: usize| {
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        j
    };
    let mut j = skip_spaces(from);
    let mut words = 0;
    let mut long_word = false;
    let mut upper = false;
    while words < 4 {
        let start = j;
        while chars
            .get(j)
            .is_some_and(|&c| c.is_alphabetic() || c == '\'' || c == '’' || (c == '-' && j > start))
        {
            j += 1;
        }
        if j == start {
            break;
        }
        let word: String = chars[start..j].iter().collect();
        upper |= word.chars().any(char::is_uppercase);
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        // A single letter is a variable (`80,000 and m = 10h`), `a` aside.
        let variable = letters == 1 && word != "a";
        if letters == 0 || variable || crate::expr::is_function_word(&word) {
            return None;
        }
        long_word |= letters >= 2;
        words += 1;
        j = skip_spaces(j);
    }
    let operator = chars.get(j).copied().filter(|c| "+-*/=≈".contains(*c))?;
    // `- 20` subtracts; `-20` after words is a negative number (`gives -11213141`).
    let binary_minus = operator != '-' || chars.get(j + 1).is_some_and(|c| c.is_whitespace());
    // Before a relation the number must end a calculation (`+ 15 miles = 25`, not `has 5 so
    // the total = 8`), and capitals are names (`which gives DP = …`), not units (`200 GB *`).
    let relation = matches!(operator, '=' | '≈');
    let ends_calculation = !relation || number_ends_calculation(&chars[..from]);
    if words == 0 || !long_word || !binary_minus || (relation && upper) || !ends_calculation {
        return None;
    }
    let k = skip_spaces(j + 1);
    chars
        .get(k)
        .is_some_and(|&c| c.is_ascii_digit() || "$(.\\".contains(c))
        .then_some(j)
}

/// `\text{ eggs}` → ` eggs `.
fn unwrap_text_command(s: &str, cmd: &str) -> String {
    let open = format!("{cmd}{{");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(&open) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + open.len()..];
        match crate::normalize::matching_brace(after) {
            Some(close) => {
                out.push(' ');
                out.push_str(&after[..close]);
                out.push(' ');
                rest = &after[close + 1..];
            }
            None => {
                out.push(' ');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `\begin{aligned}`, `\end{align*}` → a space.
fn drop_environments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = ["\\begin{", "\\end{"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((pos, len)) = next else { break };
        out.push_str(&rest[..pos]);
        out.push(' ');
        let after = &rest[pos + len..];
        rest = after.find('}').map_or(after, |c| &after[c + 1..]);
    }
    out.push_str(rest);
    out
}

/// `80,000` → `80000`: a comma between a digit and exactly three digits.
fn drop_thousands_commas(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let grouping = c == ','
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.len() > i + 3
            && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
            && chars.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
        if !grouping {
            out.push(c);
        }
    }
    out
}

/// Whole-word, case-insensitive replacement.
fn replace_word(s: &str, word: &str, with: &str) -> String {
    replace_word_if(s, word, with, |_, _| true)
}

/// `word` → `op` where the word stands between two numbers (or brackets).
fn replace_word_between_numbers(s: &str, word: &str, op: &str) -> String {
    replace_word_if(s, word, op, |before, after| {
        let b = before.trim_end().chars().next_back();
        let a = after.trim_start().chars().next();
        b.is_some_and(|c| c.is_ascii_digit() || c == ')' || c == '%')
            && a.is_some_and(|c| c.is_ascii_digit() || c == '(' || c == '\\' || c == '.')
    })
}

fn replace_word_if(s: &str, word: &str, with: &str, ok: impl Fn(&str, &str) -> bool) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let matched = lower[i..].starts_with(word)
            && s.is_char_boundary(i + word.len())
            && !s[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() && !word.starts_with('%'))
            && !s[i + word.len()..]
                .chars()
                .next()
                .is_some_and(char::is_alphabetic)
            && ok(&s[..i], &s[i + word.len()..]);
        if matched {
            out.push(' ');
            out.push_str(with);
            out.push(' ');
            i += word.len();
        } else {
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `3x4` → `3*4` (an `x` glued between digits).
fn replace_glued_x(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let between = (c == 'x' || c == 'X')
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if between {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// A run of mathematics in cleaned text, and what touches it.
struct Run<'a> {
    text: &'a str,
    /// A word (or a command) comes before it, perhaps after a space.
    after_word: bool,
    /// A letter, `_` or a command touches its start: `f(0)`, `A_1`, `\binom{7}{4}`.
    glued_before: bool,
    /// A letter, `_` or a command touches its end, or a command follows after spaces:
    /// `2x`, `1.6s^2`, `-\sqrt{3} \sin 10`.
    glued_after: bool,
}

/// The runs of mathematics in cleaned text: characters of arithmetic and the commands of
/// [`MATH_COMMANDS`]; anything else (letters, `:`, `,`, `?`, `!`) ends a run.
fn runs(s: &str) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or(' ');
        let cmd = MATH_COMMANDS
            .iter()
            .find(|m| {
                rest.starts_with(*m)
                    && !rest[m.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic())
            })
            .map(|m| m.len());
        let math = cmd.is_some() || c.is_ascii_digit() || "+-*/^(){}[]=≈%. ".contains(c);
        if math {
            if start.is_none() && c != ' ' {
                start = Some(i);
            }
        } else if let Some(st) = start.take() {
            push_run(&mut out, s, st, i);
        }
        i += cmd.unwrap_or(c.len_utf8());
    }
    if let Some(st) = start {
        push_run(&mut out, s, st, s.len());
    }
    out
}

fn push_run<'a>(out: &mut Vec<Run<'a>>, s: &'a str, start: usize, end: usize) {
    let raw = &s[start..end];
    let text = raw.trim();
    if !text.chars().any(|c| c.is_ascii_digit()) {
        return;
    }
    let name_char = |c: char| c.is_alphabetic() || c == '_' || c == '\\' || c == '\'';
    let next = s[end..].chars().next();
    let next_word = s[end..].trim_start().chars().next();
    out.push(Run {
        text,
        after_word: s[..start]
            .trim_end()
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphabetic() || c == '_'),
        // A touching name matters only where the run starts or ends with a value: `$448/week`
        // ends at an operator, so `week` is its unit.
        glued_before: s[..start].chars().next_back().is_some_and(name_char)
            && text.starts_with(|c: char| c.is_ascii_digit() || "({[".contains(c)),
        glued_after: if raw.ends_with(' ') {
            next_word == Some('\\')
        } else {
            next.is_some_and(name_char)
                && raw.ends_with(|c: char| c.is_ascii_digit() || ")}]".contains(c))
        },
    });
}

/// Reads one step: its chains and the numbers it states outside them.
fn read_step(text: &str) -> StepReading {
    let cleaned = prepare(strip_label(text));
    let mut reading = StepReading::default();
    for run in runs(&cleaned) {
        if run.text.contains(['=', '≈']) {
            let mut sides = Vec::new();
            let mut approx = Vec::new();
            let mut from = 0;
            for (i, c) in run.text.char_indices() {
                if c == '=' || c == '≈' {
                    let raw = &run.text[from..i];
                    let side = read_side(raw);
                    sides.push(if sides.is_empty() {
                        // `4) = 3` of `mex(0, 1, 2, 4) = 3`: the end of a bracket opened
                        // before the run.
                        if depth(raw) < 0 {
                            no_value(side)
                        } else {
                            cut_off(side, &run)
                        }
                    } else {
                        side
                    });
                    approx.push(c == '≈');
                    from = i + c.len_utf8();
                }
            }
            let raw = run.text[from..].trim_end_matches(['(', ' ']);
            let last = read_side(raw);
            // `= (4` of `= (4, 5)`: a bracket that closes after the run. `= 4 * v`: the
            // calculation goes on past the run (only `/` may end one: `$500/month`).
            let cut = run.glued_after || depth(raw) > 0 || raw.ends_with(['*', '+', '-', '^']);
            sides.push(if cut { no_value(last) } else { last });

            reading.chains.push(Chain { sides, approx });
        } else {
            let side = read_side(run.text);
            if let (Some(v), Some(_)) = (side.value, side.decimals) {
                reading.stated.push((side.text, v.to_f64(), side.decimals));
            } else {
                let mut nums = Vec::new();
                collect_literals(run.text, &mut nums);
                for v in nums {
                    reading.stated.push((number_text(v), v, None));
                }
            }
        }
    }
    reading
}

/// `Step 2:`, `2.`, `2)`, `-`, `*` at the start of a step.
fn strip_label(text: &str) -> &str {
    // Markdown around a label: `### Step 1:`, `**Step 2: …**`, `> 3.`.
    let t = text.trim_start().trim_start_matches(['#', '*', '>', ' ']);
    let lower = t.to_ascii_lowercase();
    let after_word = if lower.starts_with("step") {
        t[4..].trim_start()
    } else {
        t
    };
    let digits = after_word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &after_word[digits..];
    if digits > 0 || after_word.len() != t.len() {
        if let Some(r) = rest.strip_prefix([':', '.', ')']) {
            if r.starts_with(char::is_whitespace) || (after_word.len() != t.len() && r.is_empty()) {
                return r;
            }
        }
        if after_word.len() != t.len() && digits > 0 && rest.starts_with(char::is_whitespace) {
            return rest;
        }
    }
    if let Some(r) = t.strip_prefix(['-', '*', '•']) {
        if r.starts_with(' ') {
            return r;
        }
    }
    t
}

/// A chain's first side, unless words or names interrupted it, in which case it is only the
/// end of a calculation and has no value of its own:
/// - it starts with an operator (`+ 30` of `x + 30 = 110`, `- 6` of `18 pink - 6 = 12`; a
///   leading `-` is a sign unless a word comes right before it);
/// - a name touches it (`f(0) = …`, `A_1 = 4`, `\binom{7}{4} = 35`);
/// - a word comes before a bare number or one bracketed group (`half of 48 = 24` if `half
///   of` were not understood, `\sin (-10) = …`).
fn cut_off(side: Side, run: &Run<'_>) -> Side {
    let starts_with_operator = side.text.starts_with(['+', '*', '/', '^'])
        || (run.after_word && side.text.starts_with('-'));
    let argument = run.after_word && (side.decimals.is_some() || one_group(&side.text));
    if starts_with_operator || run.glued_before || argument {
        no_value(side)
    } else {
        side
    }
}

/// Brackets opened minus brackets closed.
fn depth(text: &str) -> i64 {
    text.chars().fold(0, |d, c| match c {
        '(' => d + 1,
        ')' => d - 1,
        _ => d,
    })
}

fn no_value(side: Side) -> Side {
    Side {
        value: None,
        decimals: None,
        ..side
    }
}

/// `(…)` as a whole: the bracket that opens it closes it at the very end.
fn one_group(text: &str) -> bool {
    if !text.starts_with('(') || !text.ends_with(')') {
        return false;
    }
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return i == text.len() - 1;
        }
    }
    false
}

fn read_side(raw: &str) -> Side {
    // A trailing operator is where a unit began (`$500/month` reads `500/`).
    let trimmed = raw
        .trim()
        .trim_end_matches(['.', ' ', '/', '*', '+', '-', '^']);
    let text = balance(trimmed.trim()).trim().to_owned();
    let decimals = literal_decimals(&text);
    let value = evaluate(&text);
    Side {
        text,
        value,
        decimals,
    }
}

/// Drops an unmatched `(` at the start or `)` at the end (prose parentheses around a chain).
fn balance(mut s: &str) -> &str {
    let depth = |t: &str| {
        t.chars().fold(0i64, |d, c| match c {
            '(' => d + 1,
            ')' => d - 1,
            _ => d,
        })
    };
    while s.starts_with('(') && depth(s) > 0 {
        s = s[1..].trim_start();
    }
    while s.ends_with(')') && depth(s) < 0 {
        s = s[..s.len() - 1].trim_end();
    }
    s
}

/// Places after the point when `s` is a plain number (`-12`, `3.50`), else `None`.
fn literal_decimals(s: &str) -> Option<u32> {
    let body = s.strip_prefix('-').unwrap_or(s);
    Rational::parse_decimal(body)?;
    Some(body.split_once('.').map_or(0, |(_, f)| f.len() as u32))
}

/// The value of a side without letters, or `None`.
fn evaluate(side: &str) -> Option<Value> {
    if side.is_empty() || side.len() > 400 || numbers_side_by_side(side) {
        return None;
    }
    let e = expr::parse(&percent_as_fraction(side))?;
    let mut vars = Vec::new();
    expr::variables(&e, &mut vars);
    if !vars.is_empty() {
        return None;
    }
    expr::eval(&e, &|_| None)
}

/// `2 3`: two numbers with only spaces between (pieces of different phrases, or `$2 $3`).
fn numbers_side_by_side(s: &str) -> bool {
    let b = s.as_bytes();
    let mut last_digit_then_space = false;
    let mut prev_digit = false;
    for &c in b {
        if c.is_ascii_digit() {
            if last_digit_then_space {
                return true;
            }
            prev_digit = true;
        } else if c == b' ' {
            if prev_digit {
                last_digit_then_space = true;
            }
            prev_digit = false;
        } else {
            last_digit_then_space = false;
            prev_digit = c == b'.';
        }
    }
    false
}

/// `20%` → `(20/100)`.
fn percent_as_fraction(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '%' {
            let start = out
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
                .last()
                .map_or(out.len(), |(i, _)| i);
            let num = out.split_off(start);
            out.push_str(&format!("({num}/100)"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Every number literal in `s` (and a percentage also as a fraction).
fn collect_literals(s: &str, out: &mut Vec<f64>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            if let Some(q) = Rational::parse_decimal(&s[start..i]) {
                let v = q.to_f64();
                out.push(v);
                if b.get(i) == Some(&b'%') {
                    out.push(v / 100.0);
                }
            }
        } else {
            i += 1;
        }
    }
}

/// A verified text's values: its literals and the value of every side of its chains.
fn collect_values(cleaned: &str, out: &mut Vec<f64>) {
    collect_literals(cleaned, out);
    for run in runs(cleaned) {
        for side in run.text.split(['=', '≈']) {
            if let Some(v) = read_side(side).value {
                out.push(v.to_f64());
            }
        }
    }
}

/// Numbers written as words in a problem (`three eggs`, `a dozen`, `half`).
const NUMBER_WORDS: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("thirteen", 13.0),
    ("fourteen", 14.0),
    ("fifteen", 15.0),
    ("sixteen", 16.0),
    ("seventeen", 17.0),
    ("eighteen", 18.0),
    ("nineteen", 19.0),
    ("twenty", 20.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("seventy", 70.0),
    ("eighty", 80.0),
    ("ninety", 90.0),
    ("hundred", 100.0),
    ("thousand", 1000.0),
    ("dozen", 12.0),
    ("half", 0.5),
    ("twice", 2.0),
    ("double", 2.0),
    ("triple", 3.0),
    ("third", 1.0 / 3.0),
    ("quarter", 0.25),
];

fn collect_number_words(text: &str, out: &mut Vec<f64>) {
    for word in text.split(|c: char| !c.is_ascii_alphabetic()) {
        let w = word.to_ascii_lowercase();
        if let Some((_, v)) = NUMBER_WORDS.iter().find(|(n, _)| *n == w) {
            out.push(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EGGS: &str = "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every \
                        morning and bakes muffins for her friends every day with four. She sells \
                        the remainder at the farmers' market daily for $2 per fresh duck egg. How \
                        much in dollars does she make every day at the farmers' market?";
    const EGGS_SOLUTION: &str = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n\
                                 She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.";

    fn eggs() -> Reference {
        Reference::new(EGGS, EGGS_SOLUTION, Some("18"), CheckBasis::AnswerKey)
    }

    #[test]
    fn the_model_is_asked_only_where_numbers_cannot_decide() {
        // An arithmetic error: numbers decide, the model is not asked.
        let wrong = check_work("16 - 3 - 4 = 9\n9 * 2 = 19", Some(&eggs())).unwrap();
        assert!(!needs_model_review(&wrong));
        // Right and verified: nothing to ask.
        let right = check_work("16 - 3 - 4 = 9\n9 * 2 = 18", Some(&eggs())).unwrap();
        assert!(!needs_model_review(&right));
        // Every step holds but the last result is not the answer: where it went wrong is
        // not decided by numbers.
        let method = check_work("16 - 3 - 4 = 9\nShe makes 9 dollars.", Some(&eggs())).unwrap();
        assert_eq!(
            method.first_wrong.as_ref().map(|w| w.kind),
            Some(WorkIssueKind::FinalAnswer)
        );
        assert!(needs_model_review(&method));
        // No numbers at all.
        let words = check_work("Take away what she eats.\nDouble it.", Some(&eggs())).unwrap();
        assert!(words.first_wrong.is_none());
        assert!(needs_model_review(&words));
    }

    #[test]
    fn a_model_review_is_kept_apart_and_called_an_opinion() {
        let work = "Take away what she eats.\nDouble it.";
        let steps = split_steps(work);
        let check = check_work(work, Some(&eggs())).unwrap();
        let doubted = with_model_review(
            check.clone(),
            &steps,
            ModelReview::Doubt {
                step: 1,
                advice: "Check what else uses the eggs.".into(),
            },
        );
        assert!(doubted.reviewed_by_model);
        assert!(doubted.first_wrong.is_none());
        let doubt = doubted.model_doubt.as_ref().unwrap();
        assert_eq!((doubt.step, doubt.kind), (1, WorkIssueKind::ModelDoubt));
        assert_eq!(doubt.certainty, WorkCertainty::Unsure);
        assert_eq!(doubt.text, "Take away what she eats.");
        assert!(doubted.summary.contains("not verified"));
        assert!(doubted.verdict().starts_with("maybe wrong at step 1"));
        assert!(!doubted.summary.contains("arithmetic holds"));
        // A doubted calculation that holds: the doubt can only be about the method.
        let sums = "16 - 3 = 13\nShe makes 13 dollars.";
        let on_sum = with_model_review(
            check_work(sums, Some(&eggs())).unwrap(),
            &split_steps(sums),
            ModelReview::Doubt {
                step: 1,
                advice: "Check what else uses the eggs.".into(),
            },
        );
        assert!(on_sum.model_doubt.unwrap().message.contains(
            "its arithmetic holds, so check whether it is the calculation the problem needs"
        ),);
        // Nothing doubted, or a step that is not in the work: reviewed, no doubt.
        let none = with_model_review(check.clone(), &steps, ModelReview::NoneFound);
        assert!(none.reviewed_by_model && none.model_doubt.is_none());
        assert!(none.summary.contains("doubted none"));
        for step in [0, 3] {
            let review = ModelReview::Doubt {
                step,
                advice: "Look again.".into(),
            };
            let outside = with_model_review(check.clone(), &steps, review);
            assert!(outside.reviewed_by_model && outside.model_doubt.is_none());
            assert!(outside.summary.contains("could not be read"));
        }
    }

    #[test]
    fn the_review_withholds_every_known_answer_and_the_reference_keeps_its_text() {
        let view = RunView::default();
        let withheld = review_withheld(
            &view,
            KnownAnswers {
                answer_key: Some("18"),
                teacher: Some("20"),
            },
        );
        assert!(withheld.revealed_in("She makes 18 dollars."));
        assert!(withheld.revealed_in("It is 20."));
        assert!(!withheld.revealed_in("Check the second step."));
        assert_eq!(eggs().solution(), Some(EGGS_SOLUTION));
        assert_eq!(
            Reference::answer_only("18", CheckBasis::Teacher).solution(),
            None
        );
    }

    #[test]
    fn a_wrong_calculation_is_named_without_the_right_value() {
        let work = "First 16 - 3 - 4 = 9 eggs are left.\nThen $9 \\times 2 = 19$ dollars.";
        let check = check_work(work, Some(&eggs())).unwrap();
        let wrong = check.first_wrong.unwrap();
        assert_eq!(wrong.step, 2);
        assert_eq!(wrong.kind, WorkIssueKind::Arithmetic);
        assert_eq!(wrong.certainty, WorkCertainty::Sure);
        assert_eq!(
            wrong.message,
            "Step 2: 9 × 2 = 19 does not hold; check this calculation."
        );
        assert!(!check.summary.contains("18"), "{}", check.summary);
        assert_eq!(check.final_answer, CheckVerdict::Wrong);
    }

    #[test]
    fn the_brief_example_and_latex_forms() {
        let check = check_work("$48 \\div 2 = 25$", None).unwrap();
        let wrong = check.first_wrong.unwrap();
        assert_eq!(
            wrong.message,
            "Step 1: 48 ÷ 2 = 25 does not hold; check this calculation."
        );
        assert!(!check.summary.contains("24"));
        assert!(check.summary.contains("Only the arithmetic was checked"));
        for right in [
            "\\(\\frac{48}{2} = 24\\)",
            "$$3 \\cdot 4 = 12 = 6+6$$",
            "80,000 + 50,000 = 130,000 dollars",
            "3 x 4 = 12 and 3x4=12",
            "3 times 4 = 12",
            "20% of 50 = 10",
            "half of 48 = 24",
            "10/3 = 3.33",
            "10/3 ≈ 3.3",
            "2/3 \\approx 0.67",
            "$$\\begin{aligned} 5 \\times 5 &= 25 \\\\ &= 20 + 5 \\end{aligned}$$",
            "Step 1: 7 - 2 = 5.",
            "(which is 3 * 4 = 12)",
            "The price is \\$12.50 \\times 2 = \\$25",
            "2x + 3 = 7, so x = 2",
            "10 years * 5% = 50%",
            "We have 3 1/2 - 2 = 1 1/2 hours left",
            // Names, functions and symbols are not numbers (real MATH/AIME solutions).
            "$f(-2)+f(-1)+f(0)=\\frac{-8}{-4}+\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1$",
            "Let $A_1 = 4$ and $b_3=5$, so $na_1 = 96$.",
            "There are $\\binom{7}{4}=35$ ways.",
            "$9s+18-9s=18=1.6s^{2} + 3.2s$",
            "$\\sin 20^\\circ - \\sin 40^\\circ = 2 \\cos 30^\\circ \\sin (-10^\\circ) = -\\sqrt{3} \\sin 10^\\circ$",
            "Solving, we find $x = 3$ and thus $CE = 107 - 3 = 104$.",
            "Subtracting 4 gives \\[-11213141 = -11213145+4.\\]",
            "\\[(-4)^2=16\\] \\[(-1)^2=1\\]",
            "$6_8 \\cdot 7_8 = 42_{10} = 52_8.$",
            "\\[ 6 \\times 4 = 4 \\times v \\]",
        ] {
            let check = check_work(right, None).unwrap();
            assert_eq!(check.first_wrong, None, "{right}");
        }
        for wrong in [
            "3*4 = 12 = 6+7",
            "10/3 = 3.34",
            "10/3 = 3",
            "7 \\times 8 = 54",
            "1,200 / 4 = 3,000",
            "2^3 = 6",
            "20 miles + 15 miles = 25 miles",
            "12 people per school * 4 schools = 46 people",
            // A real slip in MATH-500's own solution (test/algebra/2427): 16 - 4 is not 20.
            "The discriminant is $(-4)^2 + 4 \\cdot 1 \\cdot (-1) = 20$, which is positive",
            // A real slip of the 0.5B model on GSM8K-dev 0010.
            "\\[\n\\text{Total downloads} = 60 + 180 + 54 = 374\n\\]",
        ] {
            let check = check_work(wrong, None).unwrap();
            assert_eq!(
                check.first_wrong.map(|w| w.kind),
                Some(WorkIssueKind::Arithmetic),
                "{wrong}"
            );
        }
    }

    #[test]
    fn a_result_off_the_verified_path_is_unsure_and_the_first_wrong_step_wins() {
        // Right arithmetic with a wrong operand: 16 - 3 = 13 is not on the path.
        let work = "16 - 3 = 13 eggs to sell\n13 * 2 = 26 dollars";
        let check = check_work(work, Some(&eggs())).unwrap();
        let wrong = check.first_wrong.unwrap();
        assert_eq!(
            (wrong.step, wrong.kind),
            (1, WorkIssueKind::DiffersFromSolution)
        );
        assert_eq!(wrong.certainty, WorkCertainty::Unsure);
        assert!(wrong
            .message
            .contains("does not appear in the tutor's verified solution"));
        assert!(!check.summary.contains("18") && !check.summary.contains(" 9 "));
        // Without a reference, the same work has no wrong step.
        let check = check_work(work, None).unwrap();
        assert_eq!(check.first_wrong, None);
        assert_eq!(check.basis, CheckBasis::Unsure);
    }

    #[test]
    fn another_route_to_the_verified_answer_is_not_flagged() {
        let work = "16 * 2 = 32 dollars for all eggs\n(3 + 4) * 2 = 14 dollars eaten\n32 - 14 = 18";
        let check = check_work(work, Some(&eggs())).unwrap();
        assert_eq!(check.first_wrong, None, "{}", check.summary);
        assert_eq!(check.final_answer, CheckVerdict::Right);
        assert!(check
            .summary
            .contains("matches the tutor's verified answer"));
    }

    #[test]
    fn an_unfinished_solution_is_reported_at_its_last_step() {
        let work = "16 - 3 - 4 = 9";
        let check = check_work(work, Some(&eggs())).unwrap();
        let wrong = check.first_wrong.unwrap();
        assert_eq!((wrong.step, wrong.kind), (1, WorkIssueKind::FinalAnswer));
        assert!(!wrong.message.contains("18"));
    }

    #[test]
    fn the_right_solution_has_no_wrong_step() {
        let work = "She has 16 - 3 - 4 = 9 eggs left. She makes 9 * 2 = $18.";
        let check = check_work(work, Some(&eggs())).unwrap();
        assert_eq!(check.steps, 2);
        assert_eq!(check.first_wrong, None);
        assert_eq!(check.final_answer, CheckVerdict::Right);
    }

    #[test]
    fn steps_are_lines_or_sentences_and_bad_input_is_an_error() {
        // Labels are not numbers of the work, Markdown headers included.
        let check = check_work(
            "### Step 1: Find the eggs\n**Step 2:** 16 - 3 - 4 = 9",
            None,
        );
        assert_eq!(check.unwrap().first_wrong, None);
        let reference = eggs();
        let check = check_work("### Step 7: Find the eggs\n9 * 2 = 18", Some(&reference));
        assert_eq!(check.unwrap().first_wrong, None);
        let steps = split_steps("1. a = 3\n\n$$\nb = 4\n$$\n2) c is 5. d is 6.");
        let texts: Vec<&str> = steps.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["1. a = 3", "$$\nb = 4\n$$", "2) c is 5. d is 6."]);
        let steps = split_steps("It is 3.5 kg. Then 2 more? Yes");
        assert_eq!(steps.len(), 3);
        assert_eq!(check_work("  \n ", None), Err(WorkError::Empty));
        let long = "1+1=2\n".repeat(4000);
        assert!(matches!(
            check_work(&long, None),
            Err(WorkError::TooLong { .. })
        ));
        let many = "1+1=2\n".repeat(MAX_STEPS + 1);
        assert!(matches!(
            check_work(&many, None),
            Err(WorkError::TooManySteps { .. })
        ));
        // Hostile input neither panics nor hangs.
        for s in [
            "$$$$",
            "\\frac{",
            "((((((1",
            "=====",
            "\\text{",
            "é=ü",
            "9,99,999 = 1",
        ] {
            let _ = check_work(s, Some(&eggs()));
        }
    }

    /// Thousands of seeded random texts of the characters that steer the reader: no panic, and
    /// every named step is one of the steps read.
    #[test]
    fn random_text_never_panics() {
        const PIECES: &[&str] = &[
            "1",
            "2",
            "0",
            "9",
            ".",
            ",",
            "=",
            "+",
            "-",
            "*",
            "/",
            "^",
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            "$",
            "$$",
            "\\(",
            "\\)",
            "\\[",
            "\\]",
            "\\frac",
            "\\times",
            "\\text{",
            "\\sqrt",
            "%",
            "x",
            "of",
            " ",
            " ",
            "\n",
            "é",
            "≈",
            "_",
            "'",
            "’",
            "times",
            "half of",
            "Step",
            ":",
            "!",
            "?",
            "\\",
            "&",
            "\\begin{aligned}",
            "÷",
            "−",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let reference = eggs();
        for _ in 0..3000 {
            let len = next(60);
            let text: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            for r in [None, Some(&reference)] {
                if let Ok(check) = check_work(&text, r) {
                    if let Some(w) = &check.first_wrong {
                        assert!((1..=check.steps).contains(&w.step), "{text:?}");
                    }
                }
            }
        }
    }

    fn run(answers: &[&str], texts: &[&str]) -> RunView {
        use k2_protocol::{
            CandidateOutcome, FinalAnswerView, FinishReason, RunRequest, SelectionMethod,
        };
        RunView {
            request: Some(RunRequest {
                problem: EGGS.into(),
                settings: Default::default(),
                session: None,
            }),
            candidates: answers
                .iter()
                .zip(texts)
                .map(|(a, t)| CandidateView {
                    reasoning: String::new(),
                    answer_text: (*t).into(),
                    finished: Some(CandidateOutcome {
                        answer: Some((*a).into()),
                        finish: FinishReason::Complete,
                        tokens: 10,
                        seconds: 1.0,
                    }),
                })
                .collect(),
            final_answer: Some(FinalAnswerView {
                candidate: 0,
                answer: Some(answers[0].into()),
                method: SelectionMethod::Vote,
            }),
            ..RunView::default()
        }
    }

    #[test]
    fn a_run_is_a_reference_only_where_the_tutor_is_confident() {
        let solution = "16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars. \\boxed{18}";
        let off_path = "16 - 3 = 13\n13 * 2 = 26";
        // Two candidates agree: the chosen solution is the reference.
        let agreed = run(&["18", "18"], &[solution, "2 * 9 = 18"]);
        let reference = reference_for_run(&agreed, KnownAnswers::default(), None).unwrap();
        assert_eq!(reference.basis(), CheckBasis::Unanimous);
        let check = check_work(off_path, Some(&reference)).unwrap();
        assert_eq!(
            check.first_wrong.map(|w| (w.step, w.kind)),
            Some((1, WorkIssueKind::DiffersFromSolution))
        );
        // They disagree: arithmetic only, and the summary says so.
        let split = run(&["18", "26"], &[solution, off_path]);
        assert_eq!(
            reference_for_run(&split, KnownAnswers::default(), None),
            None
        );
        // An answer key no candidate reached: the final answer is checked, no path.
        let key = KnownAnswers {
            answer_key: Some("20"),
            teacher: None,
        };
        let reference = reference_for_run(&split, key, None).unwrap();
        assert_eq!(reference.basis(), CheckBasis::AnswerKey);
        let check = check_work(off_path, Some(&reference)).unwrap();
        assert_eq!(
            check.first_wrong.map(|w| (w.step, w.kind)),
            Some((2, WorkIssueKind::FinalAnswer))
        );
        assert!(!check.summary.contains("20"));
        // The key reached by a candidate: that candidate's solution is the path.
        let key = KnownAnswers {
            answer_key: Some("26"),
            teacher: None,
        };
        let reference = reference_for_run(&split, key, None).unwrap();
        assert_eq!(
            check_work(off_path, Some(&reference)).unwrap().first_wrong,
            None
        );
    }
}
