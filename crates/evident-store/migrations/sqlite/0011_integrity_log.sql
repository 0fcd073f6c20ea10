-- Tamper evidence. Every event stored from here on is a leaf of one RFC 6962 log in seq
-- order, the leaf being its stored body: `leaf` is that leaf's hash, recorded at commit.
-- `integrity_log` holds the first seq of the log (events stored before this migration
-- are outside it) and the log's frontier after the last commit; `checkpoints` the
-- signed heads (size = events of the log they cover).
ALTER TABLE events ADD COLUMN leaf BLOB;
CREATE TABLE integrity_log (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    start_seq  INTEGER NOT NULL,
    frontier   BLOB    NOT NULL
);
CREATE TABLE checkpoints (
    size       INTEGER NOT NULL,
    root       BLOB    NOT NULL,
    time       INTEGER NOT NULL,  -- Unix microseconds when signed
    origin     TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    signature  BLOB    NOT NULL,
    PRIMARY KEY (size, time)
);
