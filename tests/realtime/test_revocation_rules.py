"""realtime/revocation.py without I/O: which notices cover which tokens; expiry on a command."""

from __future__ import annotations

import uuid

from core.auth import Principal, Role
from realtime.revocation import CLOSE_TOKEN_EXPIRED, Guard, matches

USER = uuid.uuid4()
TOKEN = Principal(USER, Role.BUYER, "jti-1", expires_at=1_000, session="sid-1")


def test_a_suspension_covers_every_token_of_the_user_only() -> None:
    assert matches(TOKEN, {"user": str(USER), "jti": None, "sid": None})
    assert not matches(TOKEN, {"user": str(uuid.uuid4()), "jti": None, "sid": None})


def test_logout_and_family_notices_cover_their_token_or_session() -> None:
    assert matches(TOKEN, {"user": str(USER), "jti": "jti-1", "sid": None})
    assert not matches(TOKEN, {"user": str(USER), "jti": "jti-2", "sid": None})
    assert matches(TOKEN, {"user": str(USER), "jti": None, "sid": "sid-1"})
    assert not matches(TOKEN, {"user": str(USER), "jti": None, "sid": "sid-2"})
    no_session = Principal(USER, Role.BUYER, "jti-3", expires_at=1_000)
    assert not matches(no_session, {"user": str(USER), "jti": None, "sid": "sid-1"})


class _Client:
    def __init__(self) -> None:
        self.closed_with: int | None = None

    def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code


def test_a_command_after_expiry_closes_with_4005() -> None:
    guard, client = Guard(), _Client()
    assert guard.still_valid(client, TOKEN, now=999.0)  # type: ignore[arg-type]
    assert client.closed_with is None
    assert not guard.still_valid(client, TOKEN, now=1_000.0)  # type: ignore[arg-type]
    assert client.closed_with == CLOSE_TOKEN_EXPIRED
