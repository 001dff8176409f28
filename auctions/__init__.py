"""Server-authoritative live auctions: pure bidding engine, durable sequencing, closing and
the winner's order (the auctions issue)."""
