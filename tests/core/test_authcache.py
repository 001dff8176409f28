"""The verified-token and revocation-verdict caches (core/authcache.py): bounded, expiring at the
token's `exp`, and a revoked token refused at once by every app instance that hears the
revocation broadcast (two app instances on the same PostgreSQL schema and Redis), within
AUTH_REVOCATION_RECHECK_S by one that missed it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from core.auth import KeyRing, Principal, Role, TokenService, generate_key
from core.authcache import RevocationVerdicts, VerifiedTokens
from core.config import Settings
from core.context import Runtime
from core.errors import TokenExpired
from realtime.revocation import Revocations
from tests.conftest import TIMING_FACTOR
from tests.support.lifespan import lifespan_state, started


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def principal(user: uuid.UUID | None = None, exp: int = 2**31) -> Principal:
    return Principal(user or uuid.uuid4(), Role.BUYER, uuid.uuid4().hex, exp, uuid.uuid4().hex)


# -- VerifiedTokens ------------------------------------------------------------------------


def test_verified_tokens_are_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokens(3)
    people = {f"t{i}": principal() for i in range(4)}
    for token in ("t0", "t1", "t2"):
        cache.put(token, people[token])
    assert cache.get("t0") is people["t0"]  # t0 used again: t1 is now the oldest
    cache.put("t3", people["t3"])
    assert len(cache) == 3
    assert cache.get("t1") is None
    assert [cache.get(t) for t in ("t0", "t2", "t3")] == [people[t] for t in ("t0", "t2", "t3")]
    off = VerifiedTokens(0)
    off.put("t0", people["t0"])
    assert off.get("t0") is None and len(off) == 0


def test_a_verified_token_is_forgotten_at_its_exp() -> None:
    clock = Clock(1_000.0)
    cache = VerifiedTokens(10, clock=clock)
    p = principal(exp=1_010)
    cache.put("t", p)
    clock.now = 1_009.5
    assert cache.get("t") is p
    clock.now = 1_010.0  # exp <= now: PyJWT calls it expired too
    assert cache.get("t") is None
    assert len(cache) == 0


def test_token_service_reuses_the_verification_and_still_refuses_after_expiry(
    tmp_path: Path,
) -> None:
    generate_key(tmp_path, "k1")
    svc = TokenService(KeyRing.load(tmp_path), "souk", "souk", 900)
    uid = uuid.uuid4()
    token = svc.issue(uid, Role.BUYER, now=time.time() - 900 + 1.2)  # expires in ~1 s
    first = svc.verify(token)
    assert svc.verify(token) is first  # the second call is answered from the cache
    assert len(svc.verified) == 1
    time.sleep(max(0.0, first.expires_at - time.time()) + 0.05)
    with pytest.raises(TokenExpired):
        svc.verify(token)
    assert len(svc.verified) == 0
    # a token that does not verify is not remembered
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Exception):  # noqa: B017 - TokenInvalid or TokenExpired
        svc.verify(tampered)
    assert len(svc.verified) == 0


# -- RevocationVerdicts --------------------------------------------------------------------


def test_verdicts_are_kept_only_while_subscribed_and_within_the_window() -> None:
    clock = Clock()
    verdicts = RevocationVerdicts(5, clock=clock)
    p = principal()
    verdicts.not_revoked(p, verdicts.begin())
    assert not verdicts.is_known_good(p)  # not subscribed: nothing is kept
    live: list[object | None] = [object()]
    verdicts.subscribed(lambda: live[0])
    verdicts.not_revoked(p, verdicts.begin())
    assert verdicts.is_known_good(p)
    clock.now += 4.9
    assert verdicts.is_known_good(p)
    clock.now += 0.2  # past the window: ask Redis again
    assert not verdicts.is_known_good(p)
    verdicts.not_revoked(p, verdicts.begin())
    assert verdicts.is_known_good(p)
    live[0] = None  # the bus connection dropped: nothing cached is trusted
    assert not verdicts.is_known_good(p)
    assert len(verdicts) == 0
    live[0] = object()  # reconnected: a new subscription, old verdicts (none left) not trusted
    verdicts.not_revoked(p, verdicts.begin())
    stale = live[0]
    live[0] = object()
    assert stale is not live[0] and not verdicts.is_known_good(p)
    off = RevocationVerdicts(0, clock=clock)
    off.subscribed(lambda: live[0])
    off.not_revoked(p, off.begin())
    assert not off.is_known_good(p)


def test_a_revocation_heard_drops_the_users_verdicts_and_answers_read_before_it() -> None:
    verdicts = RevocationVerdicts(60, clock=Clock())
    sub = object()
    verdicts.subscribed(lambda: sub)
    user = uuid.uuid4()
    mine, my_other, someone = principal(user), principal(user), principal()
    for p in (mine, my_other, someone):
        verdicts.not_revoked(p, verdicts.begin())
    epoch = verdicts.begin()  # a request asks Redis ... and the revocation is heard meanwhile
    verdicts.forget_user(user)
    assert not verdicts.is_known_good(mine) and not verdicts.is_known_good(my_other)
    assert verdicts.is_known_good(someone)
    verdicts.not_revoked(mine, epoch)  # its answer may predate the revocation: not stored
    assert not verdicts.is_known_good(mine)


def test_verdicts_are_bounded() -> None:
    verdicts = RevocationVerdicts(60, 100, clock=Clock())
    sub = object()
    verdicts.subscribed(lambda: sub)
    people = [principal() for _ in range(250)]
    for p in people:
        verdicts.not_revoked(p, verdicts.begin())
    assert len(verdicts) == 100
    assert not verdicts.is_known_good(people[0])
    assert verdicts.is_known_good(people[-1])


# -- two app instances sharing PostgreSQL and Redis ----------------------------------------


Instances = tuple[httpx.AsyncClient, Runtime, httpx.AsyncClient, Runtime, Revocations]


@pytest.fixture
async def two_apps(settings: Settings) -> AsyncIterator[Instances]:
    # A long window: a refusal within the test's few seconds is the broadcast's doing
    s = replace(settings, auth_revocation_recheck_s=60)
    a, b = create_app(s), create_app(s)
    async with started(a) as ma, \
            started(b) as mb:
        ta = httpx.ASGITransport(app=ma.app, client=("10.0.0.1", 1234))
        tb = httpx.ASGITransport(app=mb.app, client=("10.0.0.2", 1234))
        async with httpx.AsyncClient(transport=ta, base_url="http://souk.test") as ca, \
                httpx.AsyncClient(transport=tb, base_url="http://souk.test") as cb:
            state_b = lifespan_state(mb)
            yield (ca, lifespan_state(ma)["runtime"], cb, state_b["runtime"],
                   state_b["revocations"])


async def _buyer(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    r = await client.post("/v1/auth/register", json={
        "email": f"cache{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery",
        "display_name": "Cache", "role": "buyer"})
    assert r.status_code == 201, r.text
    return r.json()["user"]["id"], {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _refused_within(client: httpx.AsyncClient, headers: dict[str, str],
                          within_s: float) -> float:
    started = time.monotonic()
    while True:
        status = (await client.get("/v1/me", headers=headers)).status_code
        if status == 401:
            return time.monotonic() - started
        assert status == 200
        assert time.monotonic() - started < within_s, "a revoked token is still accepted"
        await asyncio.sleep(0.005)


async def test_logout_is_refused_at_once_by_both_instances(two_apps: Instances) -> None:
    ca, rta, cb, rtb, _ = two_apps
    assert rta.verdicts.subscription() is not None  # both are on the revocation broadcast
    assert rtb.verdicts.subscription() is not None
    _, headers = await _buyer(ca)
    for client in (ca, cb, ca, cb):
        assert (await client.get("/v1/me", headers=headers)).status_code == 200
    assert len(rta.verdicts) == 1 and len(rtb.verdicts) == 1  # cached in both
    assert (await ca.post("/v1/auth/logout", headers=headers)).status_code == 204
    # the revoking instance dropped its verdict before answering
    assert (await ca.get("/v1/me", headers=headers)).status_code == 401
    # the other one as soon as the broadcast reaches it (pub/sub latency), far below the window
    assert await _refused_within(cb, headers, 1.0 * TIMING_FACTOR) < 1.0 * TIMING_FACTOR
    assert (await cb.get("/v1/me", headers=headers)).status_code == 401


async def test_suspension_is_refused_at_once_by_both_instances(two_apps: Instances) -> None:
    ca, rta, cb, rtb, revocations_b = two_apps
    user_id, headers = await _buyer(ca)
    for client in (ca, cb, ca, cb):
        assert (await client.get("/v1/me", headers=headers)).status_code == 200
    assert len(rta.verdicts) == 1 and len(rtb.verdicts) == 1
    # what the admin route does on instance B (api/accounts/revoke.py; the route itself is
    # tests/api/test_admin_users.py's): the key, its own verdicts, then the announcement
    await rtb.redis.set(rtb.suspended_key(user_id), b"1", ex=60)
    rtb.verdicts.forget_user(uuid.UUID(user_id))
    await revocations_b.announce(uuid.UUID(user_id))
    assert (await cb.get("/v1/me", headers=headers)).status_code == 401
    assert await _refused_within(ca, headers, 1.0 * TIMING_FACTOR) < 1.0 * TIMING_FACTOR


async def test_a_missed_announcement_is_caught_within_the_window(settings: Settings) -> None:
    window = 1
    app = create_app(replace(settings, auth_revocation_recheck_s=window))
    async with started(app) as manager:
        rt: Runtime = lifespan_state(manager)["runtime"]
        transport = httpx.ASGITransport(app=manager.app, client=("10.0.0.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            user_id, headers = await _buyer(c)
            assert (await c.get("/v1/me", headers=headers)).status_code == 200
            # revoked in Redis with no announcement at all (a lost pub/sub message)
            await rt.redis.set(rt.suspended_key(user_id), b"1", ex=60)
            t0 = time.monotonic()
            assert (await c.get("/v1/me", headers=headers)).status_code == 200  # cached
            waited = await _refused_within(c, headers, window + 1.0 * TIMING_FACTOR)
            assert time.monotonic() - t0 <= window + 1.0 * TIMING_FACTOR
            assert waited > 0


async def test_without_the_broadcast_every_request_asks_redis(settings: Settings) -> None:
    app = create_app(replace(settings, auth_revocation_recheck_s=60))
    async with started(app) as manager:
        rt: Runtime = lifespan_state(manager)["runtime"]
        rt.verdicts.unsubscribed()  # as when the process has no live subscription
        transport = httpx.ASGITransport(app=manager.app, client=("10.0.0.4", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as c:
            user_id, headers = await _buyer(c)
            assert (await c.get("/v1/me", headers=headers)).status_code == 200
            assert len(rt.verdicts) == 0
            await rt.redis.set(rt.suspended_key(user_id), b"1", ex=60)
            assert (await c.get("/v1/me", headers=headers)).status_code == 401
