"""Moved to testkit/services.py (shared with loadtests/, which must not import tests/); this name
stays for tests written before the move. New code imports testkit.services."""

from testkit.services import (
    IN_CI,
    drop_isolation,
    drop_schema_and_keys,
    make_settings,
    service_urls,
    unique_name,
)

__all__ = ["IN_CI", "drop_isolation", "drop_schema_and_keys", "make_settings", "service_urls",
           "unique_name"]
