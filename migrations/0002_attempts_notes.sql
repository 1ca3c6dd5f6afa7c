-- Schema version 2: students' own answers and teachers' notes.

-- A student's answer to a problem, checked for equivalence with the known answer (or, without
-- one, with the answer of the run it was given next to). `equivalent` is NULL when there was
-- nothing to compare with.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    problem_id  INTEGER NOT NULL REFERENCES problems (id) ON DELETE CASCADE,
    run_id      INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    answer      TEXT    NOT NULL,
    equivalent  INTEGER CHECK (equivalent IN (0, 1)),
    seconds     REAL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX attempts_of_problem ON attempts (problem_id, id DESC);

-- A teacher's note on a run, or on one point of it (`seq`: the event it refers to).
CREATE TABLE notes (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         INTEGER,
    author      TEXT,
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX notes_of_run ON notes (run_id, seq);
