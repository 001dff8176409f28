"""Plumbing shared by every Souk package: settings, errors, ids, database, Redis, auth, metrics,
logging, HTTP helpers (and the bounded HTTP server protocol), the transactional outbox, rate
limiting, idempotency keys, call coalescing, the text rule and the garbage collector's tuning.
No business rules live here, and nothing here imports another in-repo package."""
