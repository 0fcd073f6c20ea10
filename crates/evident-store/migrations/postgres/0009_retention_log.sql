-- Retention keeps the integrity log verifiable (the embedded store's migration 0013). A
-- removed event's recorded leaf hash moves to `pruned_leaves`, in the transaction that
-- removes the event, where it stands in for the event in the tree. A run of removed
-- events at the start of the log is folded into `commit_seq.log_base`: the frontier of
-- the log's first events (its size is in it), which a signed checkpoint of exactly that
-- size vouches for; the walk starts from it. NULL: nothing folded.
CREATE TABLE pruned_leaves (
    seq  bigint PRIMARY KEY,
    leaf bytea  NOT NULL
);
ALTER TABLE commit_seq ADD COLUMN log_base bytea;
