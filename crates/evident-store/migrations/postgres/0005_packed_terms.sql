-- Terms with at most two postings in a segment (most of them: one-off values) are packed
-- about 64 to a row, keyed by their top `packed_bits` bits with chunk -1, instead of one
-- row each. NULL: the segment packs nothing (segments written before this).
ALTER TABLE term_segments ADD COLUMN packed_bits integer;
