"""JWT access tokens: issue and verify with a key ring so signing keys can rotate.

Tokens are signed with Ed25519 (`alg: EdDSA`) and carry `sub`, `role`, `exp`, `iat`, `jti`,
`iss`, `aud` and a `kid` header; tokens issued from a sign-in also carry `sid`, the refresh-token
family (the session) they came from, so revoking the family revokes them too. Verification pins
the algorithm (no `none`, no HS/RS confusion), looks the key up by `kid` (an unknown kid is
refused), and requires every claim.

Key ring on disk: a directory of PEM files named by key id. `<kid>.key` is a private key (signs
and verifies); `<kid>.pub` is a public key kept only to verify tokens signed before a rotation.
Rotation: add a new `<kid>.key`, point `JWT_ACTIVE_KID` at it, restart processes one by one, and
after the access-token lifetime replace the old `.key` with its `.pub` (or delete it).
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.authcache import VerifiedTokens
from core.errors import TokenExpired, TokenInvalid

ALGORITHM = "EdDSA"
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Role(enum.StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    RIDER = "rider"
    ADMIN = "admin"


SELF_SERVICE_ROLES = frozenset({Role.BUYER, Role.SELLER, Role.RIDER})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified content of an access token."""

    user_id: uuid.UUID
    role: Role
    jti: str
    expires_at: int
    session: str | None = None  # the refresh-token family (`sid`), when issued from a sign-in

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class KeyRingError(ValueError):
    """The key directory is missing, empty, malformed, or lacks the active key."""


@dataclass(frozen=True)
class KeyRing:
    """Signing key (the active kid) plus every key that may still verify tokens."""

    active_kid: str
    signing_key: Ed25519PrivateKey
    verify_keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def load(cls, directory: Path, active_kid: str | None = None) -> KeyRing:
        """Read `directory`. Without `active_kid`, the only private key present is active;
        several private keys and no `active_kid` is an error (say which one signs)."""
        if not directory.is_dir():
            raise KeyRingError(f"JWT key directory {directory} does not exist")
        private: dict[str, Ed25519PrivateKey] = {}
        public: dict[str, Ed25519PublicKey] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".key", ".pub"):
                continue
            kid = path.stem
            if not _KID_RE.match(kid):
                raise KeyRingError(f"bad key id in file name {path.name}")
            data = path.read_bytes()
            if path.suffix == ".key":
                key = serialization.load_pem_private_key(data, password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise KeyRingError(f"{path.name} is not an Ed25519 private key")
                private[kid] = key
                public[kid] = key.public_key()
            else:
                pub = serialization.load_pem_public_key(data)
                if not isinstance(pub, Ed25519PublicKey):
                    raise KeyRingError(f"{path.name} is not an Ed25519 public key")
                public.setdefault(kid, pub)
        if not private:
            raise KeyRingError(f"no private key (<kid>.key) in {directory}")
        if active_kid is None:
            if len(private) > 1:
                raise KeyRingError("several private keys: set JWT_ACTIVE_KID to the signing one")
            active_kid = next(iter(private))
        if active_kid not in private:
            raise KeyRingError(f"JWT_ACTIVE_KID={active_kid} has no {active_kid}.key")
        return cls(active_kid, private[active_kid], public)


def generate_key(directory: Path, kid: str) -> Path:
    """Write a new Ed25519 private key as `<directory>/<kid>.key` (mode 0600) and return its path.
    Refuses to overwrite."""
    if not _KID_RE.match(kid):
        raise KeyRingError(f"bad key id {kid!r}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kid}.key"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with path.open("xb") as fh:
        path.chmod(0o600)
        fh.write(pem)
    return path


@dataclass(frozen=True)
class TokenService:
    """Issues and verifies access tokens. Build one per process in the lifespan. Tokens that
    verified are remembered until they expire (`verified`, core/authcache.py), so a client's
    next requests with the same token skip the parsing and the signature check."""

    keys: KeyRing
    issuer: str
    audience: str
    ttl_s: int
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, compare=False, repr=False)

    def issue(self, user_id: uuid.UUID, role: Role, *, now: float | None = None,
              session: str | None = None) -> str:
        """A signed access token; `session` (the refresh-token family) becomes the `sid` claim."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, object] = {
            "sub": str(user_id),
            "role": role.value,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "iss": self.issuer,
            "aud": self.audience,
        }
        if session is not None:
            claims["sid"] = session
        return jwt.encode(
            claims,
            self.keys.signing_key,
            algorithm=ALGORITHM,
            headers={"kid": self.keys.active_kid},
        )

    def verify(self, token: str) -> Principal:
        """The principal in `token`. Raises `TokenExpired` or `TokenInvalid`."""
        principal = self.verified.get(token)
        if principal is None:
            principal = self._verify(token)
            self.verified.put(token, principal)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("The token is malformed.") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid("The token's algorithm is not accepted.")
        kid = header.get("kid")
        key = self.keys.verify_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("The token's key id is unknown.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["sub", "role", "exp", "iat", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid() from exc
        session = claims.get("sid")
        try:
            if session is not None and not isinstance(session, str):
                raise TypeError("sid")
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                role=Role(claims["role"]),
                jti=str(claims["jti"]),
                expires_at=int(claims["exp"]),
                session=session,
            )
        except (ValueError, TypeError) as exc:
            raise TokenInvalid("The token's claims are malformed.") from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token in an `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
