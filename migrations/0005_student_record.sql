-- Schema version 5: a teacher's correction of a run's answer, and the hints a student opened.

-- A teacher's correction of a run's answer. The newest one (highest id) is in force; the
-- earlier ones are kept as the run's record of them.
CREATE TABLE corrections (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    answer      TEXT    NOT NULL,
    author      TEXT,
    note        TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX corrections_of_run ON corrections (run_id, id DESC);

-- Each time a student opened a hint of a run's ladder (levels from 1), in order.
CREATE TABLE hints_opened (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    level       INTEGER NOT NULL CHECK (level >= 1),
    created_at  INTEGER NOT NULL
);
CREATE INDEX hints_opened_of_run ON hints_opened (run_id, id);
