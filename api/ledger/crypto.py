"""AES-256-GCM for sensitive fields (sellers' payout bank details), with key ids so keys rotate.

Keys come from settings: `ENCRYPTION_KEYS="kid1:<base64 32 bytes>,kid2:..."` and
`ENCRYPTION_ACTIVE_KID` (which key encrypts; optional when there is only one). Every ciphertext
is stored with the kid that made it, so after adding a key and making it active, old rows still
decrypt with their key, are re-encrypted with the active key on their next write (or by
`needs_rotation` + re-encrypt in a job), and the old key can be removed once none refer to it.

Each encryption uses a fresh random 96-bit nonce (never reused with one key) and associated data
that binds the ciphertext to its purpose and owner, so a row copied onto another seller fails to
decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.config import SettingsError

NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptionFailed(Exception):
    """The ciphertext was altered, belongs to another owner, or its key is gone."""


@dataclass(frozen=True, slots=True)
class Sealed:
    kid: str
    nonce: bytes
    ciphertext: bytes


class KeyBox:
    """Encrypts with the active key, decrypts with any configured key. Never logs key material;
    `repr` shows only the key ids."""

    def __init__(self, keys: Mapping[str, bytes], active_kid: str) -> None:
        if active_kid not in keys:
            raise SettingsError(f"ENCRYPTION_ACTIVE_KID={active_kid} is not in ENCRYPTION_KEYS")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_kid = active_kid

    def __repr__(self) -> str:
        return f"KeyBox(active={self.active_kid!r}, kids={sorted(self._ciphers)!r})"

    @classmethod
    def from_config(cls, raw_keys: Mapping[str, str], active_kid: str | None) -> KeyBox | None:
        """Build from the settings' strings; None when no key is configured. Raises
        SettingsError for keys that are not base64 of exactly 32 bytes."""
        if not raw_keys:
            if active_kid:
                raise SettingsError("ENCRYPTION_ACTIVE_KID is set but ENCRYPTION_KEYS is empty")
            return None
        keys: dict[str, bytes] = {}
        for kid, text in raw_keys.items():
            try:
                key = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError(f"ENCRYPTION_KEYS: key {kid} is not base64") from None
            if len(key) != KEY_BYTES:
                raise SettingsError(f"ENCRYPTION_KEYS: key {kid} must be {KEY_BYTES} bytes")
            keys[kid] = key
        if active_kid is None:
            if len(keys) > 1:
                raise SettingsError("several ENCRYPTION_KEYS: set ENCRYPTION_ACTIVE_KID")
            active_kid = next(iter(keys))
        return cls(keys, active_kid)

    def seal(self, plaintext: bytes, *, associated: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self.active_kid]
        return Sealed(self.active_kid, nonce, cipher.encrypt(nonce, plaintext, associated))

    def open(self, sealed: Sealed, *, associated: bytes) -> bytes:
        cipher = self._ciphers.get(sealed.kid)
        if cipher is None:
            raise DecryptionFailed(f"no key with id {sealed.kid}")
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, associated)
        except InvalidTag:
            raise DecryptionFailed("ciphertext failed authentication") from None

    def needs_rotation(self, sealed: Sealed) -> bool:
        return sealed.kid != self.active_kid
