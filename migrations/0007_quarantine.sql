-- Schema version 7: values `k2 history recover` found unreadable (bytes that are not UTF-8 in
-- a TEXT column, which SQLite's integrity check accepts), kept byte for byte. The row itself
-- is repaired in place (each bad byte becomes U+FFFD), so the run shows again.

CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY,
    table_name      TEXT    NOT NULL,
    row_key         TEXT    NOT NULL,
    column_name     TEXT    NOT NULL,
    original        BLOB    NOT NULL,
    quarantined_at  INTEGER NOT NULL
);
