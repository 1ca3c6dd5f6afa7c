-- K2 Tutor session store, schema version 1: sessions, problems, runs and their event logs.
-- Times are milliseconds since the Unix epoch (UTC).

-- A student's or teacher's working session.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    title       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    archived    INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1))
);
CREATE INDEX sessions_newest_first ON sessions (archived, updated_at DESC, id DESC);

-- A problem statement; problems from a problem set remember the set and their id in it.
CREATE TABLE problems (
    id            INTEGER PRIMARY KEY,
    text          TEXT    NOT NULL,
    set_name      TEXT,
    set_id        TEXT,
    origin        TEXT,
    known_answer  TEXT,
    solution      TEXT,
    created_at    INTEGER NOT NULL,
    CHECK ((set_name IS NULL) = (set_id IS NULL))
);
CREATE UNIQUE INDEX problems_in_set ON problems (set_name, set_id) WHERE set_name IS NOT NULL;

-- One solve of a problem. `config` is the JSON of k2_store::RunConfig (models, device, settings).
-- `plan` and `answer` are copies from the event log, kept for listing and search.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    problem_id    INTEGER NOT NULL REFERENCES problems (id),
    config        TEXT    NOT NULL CHECK (json_valid(config)),
    status        TEXT    NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'interrupted', 'failed')),
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    heartbeat_at  INTEGER NOT NULL,
    writer_pid    INTEGER,
    plan          TEXT,
    answer        TEXT,
    error         TEXT
);
CREATE INDEX runs_newest_first ON runs (id DESC);
CREATE INDEX runs_of_session ON runs (session_id, id DESC);
CREATE INDEX runs_of_problem ON runs (problem_id, id DESC);
CREATE INDEX runs_still_running ON runs (status) WHERE status = 'running';

-- The append-only event log: `payload` is the JSON of one k2_protocol::RunEvent.
CREATE TABLE events (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    elapsed_ms  INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Derived from the event log, never written directly.
CREATE VIEW candidates AS
SELECT run_id,
       json_extract(payload, '$.candidate') AS candidate,
       json_extract(payload, '$.answer')    AS answer,
       json_extract(payload, '$.finish')    AS finish,
       json_extract(payload, '$.tokens')    AS tokens,
       json_extract(payload, '$.seconds')   AS seconds,
       seq
FROM events
WHERE kind = 'candidate_finished';

CREATE VIEW verdicts AS
SELECT run_id,
       json_extract(payload, '$.first')     AS first,
       json_extract(payload, '$.second')    AS second,
       json_extract(payload, '$.winner')    AS winner,
       json_extract(payload, '$.rationale') AS rationale,
       seq
FROM events
WHERE kind = 'verdict';
