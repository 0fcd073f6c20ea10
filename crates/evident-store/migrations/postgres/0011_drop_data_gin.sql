-- Data filters are answered from the term segments (migration 0004), and the exact
-- comparison runs on the few candidates they give, which are read by (time, seq). The
-- GIN index on `data` no longer answers any query, while every event still paid for it
-- at ingest (about a sixth of the server's work in a COPY).
DROP INDEX IF EXISTS events_data;
