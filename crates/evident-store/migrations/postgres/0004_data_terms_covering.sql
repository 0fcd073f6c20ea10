-- The data terms index carries the partition key too, so a newest-first walk over one
-- term is an index-only scan: no visit to the table for each row.
DROP INDEX data_terms_lookup;
CREATE INDEX data_terms_lookup ON data_terms (term, term_time, term_seq) INCLUDE (retention_days);
