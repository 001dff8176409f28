"""A cart per buyer: variants and quantities waiting for checkout."""
