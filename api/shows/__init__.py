"""Live shows: records (create, list, get, start, end) and their chat rules."""
