-- Retention: expired events are deleted in small batches by category and by type prefix.
-- `(category, time)` finds a category's expired events without scanning kept ones.
CREATE INDEX events_category_time ON events (category, time);
-- The highest commit sequence number retention ever deleted: numbers are never handed
-- out twice, even when the newest events expire.
CREATE TABLE retired_seq (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO retired_seq (one, last_seq) VALUES (1, 0);
