-- Tamper evidence (the embedded store's migration 0011, in PostgreSQL types). Every
-- event stored from here on is a leaf of one RFC 6962 log in seq order, the leaf being
-- its stored body: `leaf` is that leaf's hash, recorded at commit. The log's state sits
-- on the row whose lock orders writers, so each commit extends it in seq order:
-- `log_start` is the first seq of the log (events stored before this migration are
-- outside it), `log_frontier` the log's frontier after the last commit (8 zero bytes:
-- the empty log). `checkpoints` holds the signed heads (size = events of the log they
-- cover). The walk and the proofs read events in seq order through `events_seq`.
ALTER TABLE events ADD COLUMN leaf bytea;
ALTER TABLE commit_seq
    ADD COLUMN log_start    bigint,
    ADD COLUMN log_frontier bytea;
UPDATE commit_seq SET log_start = last_seq + 1, log_frontier = decode('0000000000000000', 'hex');
ALTER TABLE commit_seq
    ALTER COLUMN log_start    SET NOT NULL,
    ALTER COLUMN log_frontier SET NOT NULL;
CREATE TABLE checkpoints (
    size       bigint NOT NULL,
    root       bytea  NOT NULL,
    time       bigint NOT NULL,  -- Unix microseconds when signed
    origin     text   NOT NULL,
    key_id     text   NOT NULL,
    signature  bytea  NOT NULL,
    PRIMARY KEY (size, time)
);
