-- evident PostgreSQL store, schema version 1.
--
-- `events` is partitioned twice: by list on `retention_days` (each retention class is
-- dropped on its own schedule), then by range on event time, one partition per month.
-- Partitions are created by evident ahead of time and on demand (never a DEFAULT
-- partition, which would block creating new ones). `body` is the event's canonical
-- encoding, exactly the bytes the integrity chain hashes; the other columns are copies
-- of body fields for filtering. `data` is the event's data as JSONB (GIN-indexed).
CREATE TABLE events (
    seq            bigint      NOT NULL,
    id             uuid        NOT NULL,
    time           timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    retention_days integer     NOT NULL,
    type           text        NOT NULL,
    category       text        NOT NULL,
    severity       smallint    NOT NULL,  -- 0 info .. 4 critical
    priority       smallint    NOT NULL,  -- 0 info .. 4 critical
    outcome        text        NOT NULL,
    source         text,
    agent_id       text,
    user_id        text,
    source_ip      text,
    facility       text,
    correlation_id text,
    data           jsonb       NOT NULL,
    body           text        NOT NULL
) PARTITION BY LIST (retention_days);

-- Defined on the parent, so every partition gets them.
CREATE INDEX events_time ON events (time, seq);
CREATE INDEX events_type_time ON events (type, time);
CREATE INDEX events_user_time ON events (user_id, time);
CREATE INDEX events_severity_time ON events (severity, time);
CREATE INDEX events_data ON events USING gin (data jsonb_path_ops);

-- Ids of stored events, one row each, so a retried id is recognised whatever partition
-- its first copy went to. Trimmed when retention drops that partition.
CREATE TABLE event_ids (
    id             uuid        PRIMARY KEY,
    time           timestamptz NOT NULL,
    retention_days integer     NOT NULL
);
CREATE INDEX event_ids_retention ON event_ids (retention_days, time);

-- The last commit sequence number handed out; its row lock orders concurrent writers.
CREATE TABLE commit_seq (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_seq bigint  NOT NULL
);
INSERT INTO commit_seq (last_seq) VALUES (0);

-- Critical events acknowledged before the main writer has stored them.
CREATE TABLE critical_journal (
    id   uuid PRIMARY KEY,
    body text NOT NULL
);

CREATE TABLE api_keys (
    id          bigserial   PRIMARY KEY,
    hash        bytea       NOT NULL UNIQUE,  -- SHA-256 of the secret; never the secret
    role        text        NOT NULL,
    facilities  jsonb,                        -- NULL means every facility
    label       text,
    created_at  bigint      NOT NULL,         -- Unix seconds
    revoked_at  bigint
);

CREATE TABLE dead_letters (
    id         bigserial PRIMARY KEY,
    event_id   uuid      NOT NULL,
    body       text      NOT NULL,
    error      text      NOT NULL,
    failed_at  bigint    NOT NULL  -- Unix microseconds
);

CREATE TABLE folds (
    id          uuid    PRIMARY KEY,  -- the folded event's id (retries fold once)
    into_id     uuid    NOT NULL,     -- the stored event it was folded into
    folded_at   bigint  NOT NULL,     -- Unix microseconds
    summarized  boolean NOT NULL DEFAULT false
);
CREATE INDEX folds_open ON folds (into_id) WHERE NOT summarized;
