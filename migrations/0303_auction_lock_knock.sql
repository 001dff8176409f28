-- A bid writer may keep an auction's session advisory lock from one batch to the next while
-- nobody else wants it (auctions/sequencer.py: one round trip per batch instead of three). So
-- that it knows when somebody does, every writer "knocks" before it waits for the lock: it holds
-- the auction's knock key (two-int form, namespace 0x4B4E "KN") shared while it waits, and lets
-- go of it as soon as it has the lock. The holder's batch write tries the knock key exclusively
-- (pg_try_advisory_xact_lock, which never waits): failing means somebody waits, and the holder
-- unlocks right after that batch. A knock left behind by a statement cancelled while waiting
-- (session locks outlive their transaction) only makes holders unlock after every batch, as
-- they did before, until that session unlocks everything or ends.
CREATE FUNCTION auction_advisory_lock(p_key bigint, p_knock integer)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_lock_shared(19278, p_knock);  -- 0x4B4E
    PERFORM pg_advisory_lock(p_key);
    PERFORM pg_advisory_unlock_shared(19278, p_knock);
END
$$;

-- As in 0302, the lock taken through auction_advisory_lock (with its knock).
DROP FUNCTION auction_lock_and_read(bigint, uuid, uuid[], uuid[]);

CREATE FUNCTION auction_lock_and_read(p_key bigint, p_knock integer, p_auction uuid,
                                      p_bidders uuid[], p_bids uuid[])
RETURNS TABLE (auction auctions, now_ms bigint, known auction_bids[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM auction_advisory_lock(p_key, p_knock);
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

-- A writer that kept the lock writes its next batch without reading the accepted bids of that
-- batch's (bidder, bid_id) pairs first. A retry of a bid accepted before that the engine
-- accepts again fails on auction_bids' unique key; one it refuses (too low by now, say) would
-- be answered with that refusal instead of its first answer. So the batch's write passes the
-- pairs it refused through this check, in the same statement: if any was accepted before, the
-- statement fails as a unique violation, nothing is written, and the writer reads and does the
-- batch again (one index probe per pair, as in auction_lock_and_read).
CREATE FUNCTION auction_none_accepted(p_auction uuid, p_bidders uuid[], p_bids uuid[])
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1
                 FROM unnest(p_bidders, p_bids) AS k(bidder_id, bid_id)
                CROSS JOIN LATERAL (
                    SELECT 1 FROM auction_bids b
                     WHERE b.auction_id = p_auction AND b.bidder_id = k.bidder_id
                       AND b.bid_id = k.bid_id
                     LIMIT 1) AS l) THEN
        RAISE EXCEPTION 'a refused bid of this batch was accepted before (a retry)'
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN true;
END
$$;
