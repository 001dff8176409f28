"""Plumbing shared by every Souk package: settings, errors, ids, database, Redis, auth, metrics,
logging, HTTP helpers and the transactional outbox. No business rules live here, and nothing here
imports another in-repo package."""
