-- Findings: what detection concluded (the embedded store's migration 0010, in
-- PostgreSQL types). One row per rule firing into a group; while a finding is open or
-- acknowledged, further firings of its rule and group update it. `open_key` is
-- `rule_id || chr(31) || group_key` while the finding is not resolved and NULL after,
-- so the unique constraint allows one unresolved finding per rule and group. Times are
-- Unix microseconds, as in the embedded store.
CREATE TABLE findings (
    row         bigserial PRIMARY KEY,  -- newest-first order and page cursor
    id          uuid      NOT NULL UNIQUE,
    rule_id     text      NOT NULL,
    title       text      NOT NULL,
    severity    smallint  NOT NULL,  -- 0 info .. 4 critical
    group_key   text      NOT NULL,
    tags        text[]    NOT NULL,
    facility    text,
    evidence    uuid[]    NOT NULL,  -- ids of the events that fired it, the first 100
    first_seen  bigint    NOT NULL,  -- event time, Unix microseconds
    last_seen   bigint    NOT NULL,
    count       bigint    NOT NULL,
    status      text      NOT NULL,  -- open, acknowledged or resolved
    status_by   text,
    status_at   bigint,              -- Unix microseconds
    open_key    text      UNIQUE
);
CREATE INDEX findings_rule ON findings (rule_id, row);
CREATE INDEX findings_status ON findings (status, row);

-- Which events fired which findings (every one, not only the evidence kept inline).
CREATE TABLE finding_events (
    event_id  uuid   NOT NULL,
    finding   bigint NOT NULL,  -- findings.row
    PRIMARY KEY (event_id, finding)
);

-- Where the detection stage stands: findings are recorded for events up to done_seq;
-- `state` is its correlation state as of state_seq. Its row lock also orders
-- concurrent recorders of findings.
CREATE TABLE detection_checkpoint (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    done_seq   bigint  NOT NULL,
    state_seq  bigint,
    state      bytea
);
INSERT INTO detection_checkpoint (done_seq) VALUES (0);
