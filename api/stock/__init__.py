"""Stock: the variants' on_hand / reserved / sold counters, moved by checkout, orders and
auctions."""
