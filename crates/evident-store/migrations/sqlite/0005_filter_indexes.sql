-- Indexes for the query API's common filters, in newest-first order within each value
-- (every SQLite index ends with the rowid, which is `seq`, so pages come straight off it).
CREATE INDEX events_user_time ON events (user_id, time);
CREATE INDEX events_severity_time ON events (severity, time);
