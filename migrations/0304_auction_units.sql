-- An auction holds the unit it sells: one unit of its variant is reserved (variants.reserved,
-- as an unpaid order's would be) in the transaction that creates the auction, so the item
-- cannot also be sold by checkout or by a second auction while the bidding runs. The winner's
-- order takes that reserved unit over (paid: sold; cancelled: released); a close without a
-- sale, or a cancel, releases it in the same transaction as the state change.
-- Auctions created before this migration hold nothing (false): their winner's order reserves
-- a unit when it is made, as before.
ALTER TABLE auctions ADD COLUMN unit_held boolean NOT NULL DEFAULT false;
