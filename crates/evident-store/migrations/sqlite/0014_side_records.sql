-- Changes to the side tables (folds, findings' evidence and statuses) are recorded in the
-- event log from this version on. Rows made before are taken into the log once, by a
-- baseline the first start after this migration makes (then `baseline_pending` is 0).
CREATE TABLE side_records (
    one              INTEGER PRIMARY KEY CHECK (one = 1),
    baseline_pending INTEGER NOT NULL
);
INSERT INTO side_records (one, baseline_pending) VALUES (1, 1);
