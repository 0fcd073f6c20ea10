-- Data terms (see src/terms.rs): one row per string or number leaf of an event's data,
-- so `data.<path>=value` filters read the newest matching events straight off an index.
-- Columns are named apart from `events` so queries joining the two stay unambiguous.
-- Rows for events stored before this table existed are added by evident at start.
CREATE TABLE data_terms (
    term      INTEGER NOT NULL,
    term_time INTEGER NOT NULL,  -- the event's time, Unix microseconds
    term_seq  INTEGER NOT NULL,  -- the event's seq
    PRIMARY KEY (term, term_time, term_seq)
) WITHOUT ROWID;
