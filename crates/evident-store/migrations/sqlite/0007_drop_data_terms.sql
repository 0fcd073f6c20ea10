-- The data terms index (0006) made `data.<path>` filters fast, but its rows land at
-- random places in a B-tree far larger than the page cache: every commit rewrote
-- thousands of pages, and loading 2,000,000 events fell from about 20,000 to about
-- 4,300 events/s. The embedded store drops it until a design that writes in order
-- replaces it; data filters scan newest first again. (PostgreSQL keeps its data terms.)
DROP TABLE data_terms;
