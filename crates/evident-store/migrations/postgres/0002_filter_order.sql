-- The filter indexes end with `seq`, so a newest-first page (ORDER BY time DESC, seq
-- DESC) of one type, user or severity is read straight off the index instead of sorting
-- every match in the range.
DROP INDEX events_type_time;
DROP INDEX events_user_time;
DROP INDEX events_severity_time;
CREATE INDEX events_type_time ON events (type, time, seq);
CREATE INDEX events_user_time ON events (user_id, time, seq);
CREATE INDEX events_severity_time ON events (severity, time, seq);
