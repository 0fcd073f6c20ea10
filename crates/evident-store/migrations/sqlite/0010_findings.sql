-- Findings: what detection concluded. One row per rule firing into a group; while a
-- finding is open or acknowledged, further firings of its rule and group update it.
-- `open_key` is `rule_id \x1f group_key` while the finding is not resolved and NULL
-- after, so the unique index allows one unresolved finding per rule and group.
CREATE TABLE findings (
    row         INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL UNIQUE,
    rule_id     TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    severity    INTEGER NOT NULL,  -- 0 info .. 4 critical
    group_key   TEXT    NOT NULL,
    tags        TEXT    NOT NULL,  -- JSON array
    facility    TEXT,
    evidence    TEXT    NOT NULL,  -- JSON array of event ids, the first 100
    first_seen  INTEGER NOT NULL,  -- event time, Unix microseconds
    last_seen   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    status_by   TEXT,
    status_at   INTEGER,
    open_key    TEXT UNIQUE
);
CREATE INDEX findings_rule ON findings (rule_id, row);
CREATE INDEX findings_status ON findings (status, row);

-- Which events fired which findings (every one, not only the evidence kept inline).
CREATE TABLE finding_events (
    event_id   BLOB    NOT NULL,
    finding    INTEGER NOT NULL,
    PRIMARY KEY (event_id, finding)
) WITHOUT ROWID;

-- Where the detection stage stands: findings are recorded for events up to done_seq;
-- `state` is its correlation state as of state_seq.
CREATE TABLE detection_checkpoint (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    done_seq   INTEGER NOT NULL,
    state_seq  INTEGER,
    state      BLOB
);
INSERT INTO detection_checkpoint (one, done_seq) VALUES (1, 0);
