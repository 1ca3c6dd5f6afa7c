-- Schema version 8: a classroom server's roles (issue 29).
--
-- Runs belong to the student whose token started them (NULL: the teacher's, or a desktop
-- app's own); a student-mode run keeps its candidates and answer from its owner until they ask
-- for the solution (`revealed_at`). Students are kept by name and never deleted, so a removed
-- student's runs keep their owner.

CREATE TABLE students (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    added_at INTEGER NOT NULL
);

ALTER TABLE runs ADD COLUMN owner_id INTEGER REFERENCES students (id);
ALTER TABLE runs ADD COLUMN student_mode INTEGER NOT NULL DEFAULT 0 CHECK (student_mode IN (0, 1));
ALTER TABLE runs ADD COLUMN revealed_at INTEGER;
CREATE INDEX runs_by_owner ON runs (owner_id, id DESC);

-- Run ids are never handed out twice. SQLite gives a new row max(id) + 1, so deleting the
-- newest run gave its id to the next one, and a client still holding the old id wrote notes
-- and attempts on someone else's run. New runs take an id above every id ever used: the
-- highest one deleted is kept here. (Not AUTOINCREMENT: that needs `runs` rebuilt, and
-- dropping it would cascade to every event, note and attempt.)
CREATE TABLE id_floor (
    tbl TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
INSERT INTO id_floor (tbl, last) VALUES ('runs', coalesce((SELECT max(id) FROM runs), 0));
CREATE TRIGGER runs_raise_id_floor AFTER DELETE ON runs BEGIN
    UPDATE id_floor SET last = max(last, old.id) WHERE tbl = 'runs';
END;

-- The class's settings the teacher changes while the server runs (`test_mode`: no hints and no
-- solutions for students until the teacher lifts it).
CREATE TABLE class_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    set_at INTEGER NOT NULL
);
