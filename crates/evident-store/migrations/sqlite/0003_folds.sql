-- Events deduplication folded into an earlier, stored event. A fold is written (and
-- fsynced) before the sender is acknowledged; when the deduplication window closes, a
-- summary event records the count and the folds are marked summarized, in one transaction.
CREATE TABLE folds (
    id          BLOB    PRIMARY KEY,       -- the folded event's id (retries fold once)
    into_id     BLOB    NOT NULL,          -- the stored event it was folded into
    folded_at   INTEGER NOT NULL,          -- Unix microseconds
    summarized  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX folds_open ON folds (into_id) WHERE summarized = 0;
