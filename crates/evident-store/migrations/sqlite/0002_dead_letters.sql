-- Events the store kept refusing, kept durably for an admin to inspect and replay.
CREATE TABLE dead_letters (
    id         INTEGER PRIMARY KEY,
    event_id   BLOB    NOT NULL,
    body       TEXT    NOT NULL,  -- the event's canonical encoding
    error      TEXT    NOT NULL,  -- why the store refused it
    failed_at  INTEGER NOT NULL   -- Unix microseconds
);
