-- The closing scheduler checks, once a second, that each recent commit's announcement reached
-- Redis (auctions/scheduler.py, `check_announcements`): it reads the publications recorded
-- since its last check, by time. auction_publications only ever gets inserts, so this index is
-- appended to and never rewritten. Building it blocks the table's inserts (bid batches) while
-- it runs, as migrations run in a transaction: on a large table, create it beforehand with
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS auction_publications_created
--       ON auction_publications (created_at);
-- and this migration then finds it there.
CREATE INDEX IF NOT EXISTS auction_publications_created ON auction_publications (created_at);
