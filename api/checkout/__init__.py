"""Checkout: cart → one order per seller, stock reserved and money held in one transaction."""
