-- Schema version 6: "Check my work" (issue 27). A student's own worked solution on a run's
-- problem, kept with what k2_answer::work found: the first wrong step (NULL when none was
-- found), its kind and certainty, the final answer's verdict and what the steps were checked
-- against. `result` is the whole check as JSON (k2_protocol::WorkCheck: the messages shown).
CREATE TABLE work_checks (
    id            INTEGER PRIMARY KEY,
    problem_id    INTEGER NOT NULL REFERENCES problems (id) ON DELETE CASCADE,
    run_id        INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    work          TEXT    NOT NULL,
    steps         INTEGER NOT NULL,
    wrong_step    INTEGER,
    kind          TEXT CHECK (kind IN ('arithmetic', 'differs_from_solution', 'final_answer')),
    certainty     TEXT CHECK (certainty IN ('sure', 'unsure')),
    final_answer  TEXT NOT NULL CHECK (final_answer IN ('right', 'wrong', 'unsure')),
    basis         TEXT NOT NULL
        CHECK (basis IN ('answer_key', 'teacher', 'unanimous', 'verifier', 'unsure')),
    result        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX work_checks_of_problem ON work_checks (problem_id, id DESC);
