"""Operator endpoints (role admin): order intervention and the dead-letter list."""
