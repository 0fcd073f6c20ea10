-- Data filters (`data.<path>=v`) through an inverted index written in order.
--
-- Each segment covers the commit sequence numbers first_seq..=last_seq; its postings hold,
-- per data term, that range's matching events newest first, in chunks (chunk 0 newest).
-- Segments are written whole and merged into larger ones, never updated, so their rows
-- land at the end of the B-tree (0006's `(term, seq)` rows landed everywhere). Events
-- past the highest last_seq are not indexed yet and are scanned directly.
CREATE TABLE term_segments (
    id        INTEGER PRIMARY KEY,
    level     INTEGER NOT NULL,  -- 0 when built from new events, +1 per merge
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    min_time  INTEGER NOT NULL,
    max_time  INTEGER NOT NULL
);
CREATE INDEX term_segments_level ON term_segments (level, id);
CREATE TABLE term_postings (
    segment  INTEGER NOT NULL,
    term     INTEGER NOT NULL,
    chunk    INTEGER NOT NULL,
    postings BLOB    NOT NULL,  -- varint deltas of (time, seq), newest first
    PRIMARY KEY (segment, term, chunk)
) WITHOUT ROWID;
