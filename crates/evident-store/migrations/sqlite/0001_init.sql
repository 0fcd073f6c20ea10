-- evident embedded store, schema version 1.
--
-- `seq` is the gap-free commit sequence (the rowid: rows are appended in commit order).
-- `body` is the event's canonical encoding, exactly the bytes the integrity chain hashes;
-- the other columns are copies of body fields, kept for filtering.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,
    id             BLOB    NOT NULL,
    time           INTEGER NOT NULL,  -- event time, Unix microseconds
    received_at    INTEGER NOT NULL,  -- receipt time, Unix microseconds
    type           TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    severity       INTEGER NOT NULL,  -- 0 info .. 4 critical
    priority       INTEGER NOT NULL,  -- 0 info .. 4 critical
    outcome        TEXT    NOT NULL,
    source         TEXT,
    agent_id       TEXT,
    user_id        TEXT,
    source_ip      TEXT,
    facility       TEXT,
    correlation_id TEXT,
    body           TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (id);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_type_time ON events (type, time);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    hash        BLOB    NOT NULL UNIQUE,  -- SHA-256 of the secret; the secret itself is never stored
    role        TEXT    NOT NULL,
    facilities  TEXT,                     -- JSON array; NULL means every facility
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
