-- Retention keeps the integrity log verifiable. A removed event's recorded leaf hash
-- moves to `pruned_leaves`, where it stands in for the event in the tree. A run of
-- removed events at the start of the log is folded into `base_frontier`: the frontier
-- of the log's first events (its size is in it), which a signed checkpoint of exactly
-- that size vouches for; the walk starts from it.
ALTER TABLE integrity_log ADD COLUMN base_frontier BLOB;
CREATE TABLE pruned_leaves (
    seq  INTEGER PRIMARY KEY,
    leaf BLOB    NOT NULL
);
