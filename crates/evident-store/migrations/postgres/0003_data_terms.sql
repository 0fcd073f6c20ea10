-- Data terms (see src/terms.rs): one row per string or number leaf of an event's data,
-- so `data.<path>=value` filters read the newest matching events straight off an index
-- whatever the value's frequency (the GIN index stays for containment queries in SQL).
-- Partitioned exactly like `events`, and dropped or trimmed with it.
CREATE TABLE data_terms (
    term           bigint      NOT NULL,
    term_time      timestamptz NOT NULL,
    term_seq       bigint      NOT NULL,
    retention_days integer     NOT NULL
) PARTITION BY LIST (retention_days);
CREATE INDEX data_terms_lookup ON data_terms (term, term_time, term_seq);
