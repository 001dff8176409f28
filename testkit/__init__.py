"""Helpers shared by the tests (tests/) and the load tools (loadtests/): real servers on this
machine, per-run isolation (a PostgreSQL schema and a Redis prefix), funded buyers. Neither
the server packages nor anything else imports it; loadtests/ imports this, never tests/
(tests/test_layout.py)."""
