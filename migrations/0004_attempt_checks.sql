-- Schema version 4: every checked attempt keeps its verdict and what it rested on
-- (k2_protocol::AttemptCheck, computed by k2_answer::check). Attempts kept before this
-- version have neither (NULL): they were compared with the run's answer, whatever it was.
ALTER TABLE attempts ADD COLUMN verdict TEXT CHECK (verdict IN ('right', 'wrong', 'unsure'));
ALTER TABLE attempts ADD COLUMN basis TEXT
    CHECK (basis IN ('answer_key', 'teacher', 'unanimous', 'verifier', 'unsure'));
