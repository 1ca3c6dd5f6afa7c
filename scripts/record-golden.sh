#!/usr/bin/env bash
# Records real model outputs for the golden rendering tests (tests/browser/golden.mjs): each
# prompt asks the 1.5B solver for one kind of mathematics (every delimiter and environment
# the renderer handles); the output is kept as tests/browser/fixtures/golden/NAME.md with a
# header saying how it was made. Greedy decoding, so a re-recording on the same model is the
# same. The 1.5B coder model answers \boxed{} in the money problem, and puts an align
# environment in a ```latex code block (which must stay code) however it is asked. Usage: scripts/record-golden.sh [K2_BIN] (ONLY="boxed align" records just those)
set -euo pipefail
cd "$(dirname "$0")/.."
K2="${1:-${CARGO_TARGET_DIR:-target}/release/k2}"
MODEL=qwen2.5-coder-1.5b-instruct-q4_k_m
OUT=tests/browser/fixtures/golden
mkdir -p "$OUT"
record() {
  local name="$1" prompt="$2"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  local text
  text="$("$K2" generate --model "$MODEL" --max-tokens 220 --temperature 0 --prompt "$prompt")"
  {
    printf '<!-- recorded: k2 generate --model %s --max-tokens 220 --temperature 0\n' "$MODEL"
    printf '     prompt: %s -->\n' "$prompt"
    printf '%s\n' "$text"
  } > "$OUT/$name.md"
  echo "recorded $OUT/$name.md"
}
record inline-dollars 'Explain Vieta formulas for a quadratic in two sentences. Write every formula inline between single dollar signs, like $x_1 + x_2$.'
record display-dollars 'State the quadratic formula. Put it on its own line between double dollar signs $$ ... $$, then explain each symbol.'
record paren-brackets 'Show that the sum of the first n odd numbers is n^2. Use \( ... \) for inline math and \[ ... \] for displayed equations.'
record align 'Without any code: write the steps of solving x + y = 10, x - y = 4 (add them: 2x = 14, so x = 7, y = 3) as one LaTeX \begin{align} ... \end{align} block with aligned = signs.'
record cases 'Define the absolute value function |x| as a piecewise function using the LaTeX cases environment inside $$ ... $$.'
record matrix 'Compute the determinant of the 2x2 matrix with rows (1, 2) and (3, 4). Write the matrix with \begin{pmatrix} ... \end{pmatrix} inside $$ ... $$.'
record multiline 'Expand (a + b)^3. Write the expansion as one displayed equation between $$ and $$ that spans several lines of text.'
record money 'A book costs $5 and a pen costs $10. How much do 3 books and 2 pens cost? Use plain dollar amounts like $15 in the text, no LaTeX.'
