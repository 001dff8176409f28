"""JWT issue/verify: expiry, signatures, algorithm pinning, key ids, rotation."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.auth import KeyRing, KeyRingError, Role, TokenService, bearer_token, generate_key
from core.errors import TokenExpired, TokenInvalid


def service(directory: Path, kid: str | None = None, ttl: int = 900) -> TokenService:
    return TokenService(KeyRing.load(directory, kid), "souk", "souk", ttl)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_key(tmp_path, "k1")
    return tmp_path


def test_round_trip(keys: Path) -> None:
    svc = service(keys)
    uid = uuid.uuid4()
    principal = svc.verify(svc.issue(uid, Role.SELLER))
    assert principal.user_id == uid
    assert principal.role is Role.SELLER
    header = jwt.get_unverified_header(svc.issue(uid, Role.BUYER))
    assert header["kid"] == "k1"
    assert header["alg"] == "EdDSA"


def test_expired_token(keys: Path) -> None:
    svc = service(keys, ttl=60)
    token = svc.issue(uuid.uuid4(), Role.BUYER, now=time.time() - 120)
    with pytest.raises(TokenExpired):
        svc.verify(token)


def test_bad_signature(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    generate_key(other, "k1")  # same kid, different key: signature must not verify
    forged = service(other).issue(uuid.uuid4(), Role.ADMIN)
    with pytest.raises(TokenInvalid):
        service(keys).verify(forged)
    good = service(keys).issue(uuid.uuid4(), Role.BUYER)
    head, body, sig = good.split(".")
    tampered_body = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(body + "==").replace(b'"buyer"', b'"admin"')
        )
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(TokenInvalid):
        service(keys).verify(f"{head}.{tampered_body}.{sig}")


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "iss": "souk",
        "aud": "souk",
    }


def test_alg_none_refused(keys: Path) -> None:
    token = jwt.encode(_claims(), key=None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(TokenInvalid):
        service(keys).verify(token)


def test_hs256_with_public_key_as_secret_refused(keys: Path) -> None:
    """Algorithm confusion: an attacker signs HS256 using our *public* key bytes as the secret."""
    ring = KeyRing.load(keys)
    public_pem = ring.verify_keys["k1"].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(_claims()).encode())
    sig = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(TokenInvalid):
        service(keys).verify(f"{header}.{payload}.{sig}")


def test_rs256_token_refused(keys: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(TokenInvalid):
        service(keys).verify(token)


def test_unknown_and_missing_kid(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    generate_key(other, "k9")
    with pytest.raises(TokenInvalid):
        service(keys).verify(service(other).issue(uuid.uuid4(), Role.BUYER))
    ring = KeyRing.load(keys)
    no_kid = jwt.encode(_claims(), ring.signing_key, algorithm="EdDSA")
    with pytest.raises(TokenInvalid):
        service(keys).verify(no_kid)


def test_missing_claims_and_wrong_audience(keys: Path) -> None:
    ring = KeyRing.load(keys)
    claims = _claims()
    del claims["jti"]
    with pytest.raises(TokenInvalid):
        service(keys).verify(
            jwt.encode(claims, ring.signing_key, algorithm="EdDSA", headers={"kid": "k1"})
        )
    claims = {**_claims(), "aud": "someone-else"}
    with pytest.raises(TokenInvalid):
        service(keys).verify(
            jwt.encode(claims, ring.signing_key, algorithm="EdDSA", headers={"kid": "k1"})
        )
    claims = {**_claims(), "role": "superuser"}
    with pytest.raises(TokenInvalid):
        service(keys).verify(
            jwt.encode(claims, ring.signing_key, algorithm="EdDSA", headers={"kid": "k1"})
        )


def test_garbage_tokens(keys: Path) -> None:
    for junk in ("", "abc", "a.b.c", "ey.ey.ey", "x" * 5000):
        with pytest.raises(TokenInvalid):
            service(keys).verify(junk)


def test_rotation_keeps_old_tokens_valid(keys: Path) -> None:
    old_token = service(keys).issue(uuid.uuid4(), Role.BUYER)
    generate_key(keys, "k2")
    with pytest.raises(KeyRingError):
        KeyRing.load(keys)  # two private keys and no active kid: refuse to guess
    rotated = service(keys, "k2")
    assert rotated.verify(old_token).role is Role.BUYER
    new_token = rotated.issue(uuid.uuid4(), Role.BUYER)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    # Retire k1 to verify-only: its .key becomes a .pub.
    ring = KeyRing.load(keys, "k2")
    (keys / "k1.pub").write_bytes(
        ring.verify_keys["k1"].public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (keys / "k1.key").unlink()
    assert service(keys).verify(old_token).role is Role.BUYER
    # Drop k1 entirely: its tokens stop verifying.
    (keys / "k1.pub").unlink()
    with pytest.raises(TokenInvalid):
        service(keys).verify(old_token)


def test_key_ring_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.load(tmp_path / "missing")
    with pytest.raises(KeyRingError):
        KeyRing.load(tmp_path)
    generate_key(tmp_path, "a")
    with pytest.raises(KeyRingError):
        KeyRing.load(tmp_path, "b")
    with pytest.raises(FileExistsError):
        generate_key(tmp_path, "a")
    with pytest.raises(KeyRingError):
        generate_key(tmp_path, "../evil")


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
