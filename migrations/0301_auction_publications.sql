-- What each commit of an auction announced on `auction:{id}`, numbered per auction, written in
-- the commit itself. The sequencer publishes after COMMIT; if a process dies (or Redis fails)
-- between the two, the next commit on the auction finds the gap in Redis's record of what was
-- announced and publishes the missing ones from here first, so watchers see every commit, in
-- order (see auctions/sequencer.py).
ALTER TABLE auctions ADD COLUMN pub_seq bigint NOT NULL DEFAULT 0 CHECK (pub_seq >= 0);

CREATE TABLE auction_publications (
    auction_id  uuid NOT NULL REFERENCES auctions (id),
    pub_seq     bigint NOT NULL CHECK (pub_seq > 0),
    payloads    jsonb NOT NULL CHECK (jsonb_typeof(payloads) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (auction_id, pub_seq)
);
