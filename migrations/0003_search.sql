-- Schema version 3: full-text search over runs' problems, plans and answers (FTS5).
-- unicode61 splits LaTeX into its words (`\frac{1}{2}` is frac, 1, 2) and folds accents.

CREATE VIRTUAL TABLE run_search USING fts5 (
    problem, plan, answer,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Runs stored before this version become searchable too.
INSERT INTO run_search (rowid, problem, plan, answer)
SELECT runs.id, problems.text, coalesce(runs.plan, ''), coalesce(runs.answer, '')
FROM runs JOIN problems ON problems.id = runs.problem_id;

CREATE TRIGGER run_search_on_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_search (rowid, problem, plan, answer)
    VALUES (new.id, (SELECT text FROM problems WHERE id = new.problem_id),
            coalesce(new.plan, ''), coalesce(new.answer, ''));
END;

CREATE TRIGGER run_search_on_update AFTER UPDATE OF plan, answer ON runs BEGIN
    UPDATE run_search SET plan = coalesce(new.plan, ''), answer = coalesce(new.answer, '')
    WHERE rowid = new.id;
END;

CREATE TRIGGER run_search_on_delete AFTER DELETE ON runs BEGIN
    DELETE FROM run_search WHERE rowid = old.id;
END;
