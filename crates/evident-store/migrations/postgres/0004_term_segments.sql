-- Data filters move from one `data_terms` row per term per event (0003) to segments of
-- posting lists, the design the embedded store uses (see its migration 0008): a few
-- rows per term per 4,096 events, written after the events commit instead of inside
-- every append. Events past the newest segment are searched through `seq`.
DROP TABLE data_terms;
CREATE INDEX events_seq ON events (seq);
CREATE TABLE term_segments (
    id        bigserial   PRIMARY KEY,
    level     integer     NOT NULL,  -- 0 when built from new events, +1 per merge
    first_seq bigint      NOT NULL,
    last_seq  bigint      NOT NULL,
    events    bigint      NOT NULL,
    min_time  bigint      NOT NULL,  -- Unix microseconds
    max_time  bigint      NOT NULL
);
CREATE INDEX term_segments_level ON term_segments (level, id);
CREATE TABLE term_postings (
    segment  bigint NOT NULL,
    term     bigint NOT NULL,
    chunk    integer NOT NULL,
    postings bytea  NOT NULL,  -- varint deltas of (time, seq), newest first
    PRIMARY KEY (segment, term, chunk)
);
