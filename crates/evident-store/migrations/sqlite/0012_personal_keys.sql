-- Personal data: a key may read personal fields in the clear. Admin keys always may;
-- this flag grants it to other keys.
ALTER TABLE api_keys ADD COLUMN personal INTEGER NOT NULL DEFAULT 0;
