"""Server-authoritative live auctions: pure bidding engine, durable sequencing, closing, winner to order. (Auctions issue.)"""
