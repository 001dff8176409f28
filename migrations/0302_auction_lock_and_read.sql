-- One round trip for the start of a bid batch (auctions/sequencer.py): take the auction's
-- session advisory lock, then read the auction, the database clock and the accepted bids that
-- match the batch's (bidder, bid_id) pairs (idempotent retries). VOLATILE matters: the query
-- after the lock takes a fresh snapshot, so it sees every commit of the writer that held the
-- lock before (a single statement would read with a snapshot taken before the lock wait).
-- The lookup is one unique-index probe per pair (LATERAL ... LIMIT 1), whatever plan the
-- statistics of the day would give a join (a join's plan cached on an empty table scanned
-- every bid of the auction).
CREATE FUNCTION auction_lock_and_read(p_key bigint, p_auction uuid, p_bidders uuid[],
                                      p_bids uuid[])
RETURNS TABLE (auction auctions, now_ms bigint, known auction_bids[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_lock(p_key);
    RETURN QUERY
        SELECT a, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
               ARRAY(SELECT l.b
                       FROM unnest(p_bidders, p_bids) AS k(bidder_id, bid_id)
                      CROSS JOIN LATERAL (
                          SELECT b FROM auction_bids b
                           WHERE b.auction_id = p_auction AND b.bidder_id = k.bidder_id
                             AND b.bid_id = k.bid_id
                           LIMIT 1) AS l)
          FROM auctions a WHERE a.id = p_auction;
END
$$;
