"""Settings parsing: defaults, every problem reported at once, secrets redacted."""

from __future__ import annotations

import pytest

from core.config import Settings, SettingsError

BASE = {
    "DATABASE_URL": "postgresql://souk:s3cret@db:5432/souk",
    "REDIS_URL": "redis://:hunter2@cache:6379/0",
}


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert s.database_schema == "public"
    assert s.migrate_on_start is True
    assert s.payment_provider == "none"
    assert s.access_token_ttl_s == 900


def test_every_problem_is_reported_together() -> None:
    env = {
        "DATABASE_URL": "mysql://x",
        "DATABASE_POOL_MAX": "lots",
        "ACCESS_TOKEN_TTL_S": "5",
        "MIGRATE_ON_START": "maybe",
        "SOUK_ENV": "staging",
    }
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    text = str(info.value)
    for name in (
        "DATABASE_URL",
        "REDIS_URL is required",
        "DATABASE_POOL_MAX",
        "ACCESS_TOKEN_TTL_S",
        "MIGRATE_ON_START",
        "SOUK_ENV",
    ):
        assert name in text


def test_demo_payments_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="PAYMENT_PROVIDER=demo"):
        Settings.from_env({**BASE, "SOUK_ENV": "prod", "PAYMENT_PROVIDER": "demo"})


def test_bid_writers_leave_pool_connections_for_requests() -> None:
    from auctions.runtime import settings_from

    assert settings_from(Settings.from_env(BASE)).writer_connections == 10  # half of 20
    s = Settings.from_env({**BASE, "DATABASE_POOL_MAX": "8", "AUCTION_WRITER_CONNECTIONS": "3"})
    assert settings_from(s).writer_connections == 3
    with pytest.raises(SettingsError, match="AUCTION_WRITER_CONNECTIONS"):
        Settings.from_env({**BASE, "DATABASE_POOL_MAX": "8", "AUCTION_WRITER_CONNECTIONS": "8"})


def test_redis_cluster_refuses_what_it_does_not_support_yet() -> None:
    assert Settings.from_env(BASE | {"REDIS_CLUSTER": "true"}).redis_cluster is True
    with pytest.raises(SettingsError, match="AUCTION_ROUTING"):
        Settings.from_env(BASE | {"REDIS_CLUSTER": "true", "AUCTION_ROUTING": "true"})


def test_schema_and_prefix_are_validated() -> None:
    with pytest.raises(SettingsError, match="DATABASE_SCHEMA"):
        Settings.from_env({**BASE, "DATABASE_SCHEMA": 'x"; drop'})
    with pytest.raises(SettingsError, match="REDIS_PREFIX"):
        Settings.from_env({**BASE, "REDIS_PREFIX": "a b"})


def test_secrets_are_redacted() -> None:
    s = Settings.from_env({**BASE, "ENCRYPTION_KEYS": "k1:c2VjcmV0c2VjcmV0"})
    text = repr(s) + str(s.safe_dict())
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert "c2VjcmV0c2VjcmV0" not in text
    assert "souk:***@db" in text
    assert s.encryption_keys == {"k1": "c2VjcmV0c2VjcmV0"}


def test_bad_key_map() -> None:
    with pytest.raises(SettingsError, match="ENCRYPTION_KEYS"):
        Settings.from_env({**BASE, "ENCRYPTION_KEYS": "nocolon"})


def test_log_formatters_carry_extras_and_request_id() -> None:
    import logging

    import orjson

    from core.logs import JsonFormatter, TextFormatter, request_id

    record = logging.LogRecord("souk.t", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.route = "/v1/me"
    token = request_id.set("rid-123")
    try:
        data = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert data["msg"] == "hello you"
    assert data["route"] == "/v1/me"
    assert data["request_id"] == "rid-123"
    assert "route=/v1/me" in TextFormatter().format(record)


def test_the_table_fills_every_field_once_with_the_dataclass_defaults() -> None:
    import dataclasses
    from pathlib import Path

    from core.config.tables import VARIABLES

    fields = [var.field for var in VARIABLES]
    assert sorted(fields) == sorted(f.name for f in dataclasses.fields(Settings))
    assert len({var.name for var in VARIABLES}) == len(VARIABLES)
    # an empty environment (but the required URLs) gives the dataclass's own defaults
    built = Settings(
        database_url=BASE["DATABASE_URL"],
        redis_url=BASE["REDIS_URL"],
        jwt_key_dir=Path(".devdata/jwt"),
    )
    assert Settings.from_env(BASE) == built


def test_every_cross_field_problem_is_reported_together() -> None:
    env = {
        **BASE,
        "SOUK_ENV": "prod",
        "DATABASE_POOL_MIN": "30",
        "WS_COMMAND_BURST": "3",
        "METRICS_TOKEN": "short",
        "AUCTION_ACK_BEFORE_COMMIT": "true",
    }
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    text = str(info.value)
    for name in ("DATABASE_POOL_MIN", "WS_COMMAND_BURST", "METRICS_TOKEN must be at least",
                 "AUCTION_ACK_BEFORE_COMMIT"):
        assert name in text
    assert "short" not in text
