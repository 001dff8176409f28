"""AES-256-GCM key box: round trip, binding to the owner, tamper detection, rotation."""

from __future__ import annotations

import base64
import os

import pytest

from api.ledger.crypto import DecryptionFailed, KeyBox, Sealed
from core.config import SettingsError


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_round_trip_and_associated_data_binding() -> None:
    box = KeyBox.from_config({"a": _key()}, None)
    assert box is not None
    sealed = box.seal(b"DE89370400440532013000", associated=b"seller-1")
    assert b"DE89" not in sealed.ciphertext
    assert box.open(sealed, associated=b"seller-1") == b"DE89370400440532013000"
    with pytest.raises(DecryptionFailed):
        box.open(sealed, associated=b"seller-2")  # copied onto another seller
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(DecryptionFailed):
        box.open(Sealed(sealed.kid, sealed.nonce, flipped), associated=b"seller-1")
    # A fresh nonce each time: the same plaintext never gives the same ciphertext.
    assert box.seal(b"x", associated=b"s").nonce != box.seal(b"x", associated=b"s").nonce


def test_rotation_old_rows_still_open_and_removed_keys_fail() -> None:
    k1, k2 = _key(), _key()
    old = KeyBox.from_config({"k1": k1}, None)
    assert old is not None
    sealed = old.seal(b"secret", associated=b"s")
    both = KeyBox.from_config({"k1": k1, "k2": k2}, "k2")
    assert both is not None
    assert both.open(sealed, associated=b"s") == b"secret"
    assert both.needs_rotation(sealed)
    resealed = both.seal(both.open(sealed, associated=b"s"), associated=b"s")
    assert resealed.kid == "k2"
    assert not both.needs_rotation(resealed)
    only_new = KeyBox.from_config({"k2": k2}, None)
    assert only_new is not None
    assert only_new.open(resealed, associated=b"s") == b"secret"
    with pytest.raises(DecryptionFailed):
        only_new.open(sealed, associated=b"s")
    assert k1 not in repr(both)
    assert k2 not in repr(both)


@pytest.mark.parametrize(
    ("keys", "active"),
    [
        ({"a": "not base64!"}, None),
        ({"a": base64.b64encode(b"short").decode()}, None),
        ({"a": _key(), "b": _key()}, None),
        ({"a": _key()}, "b"),
        ({}, "a"),
    ],
)
def test_bad_key_configuration_fails_loudly(keys: dict[str, str], active: str | None) -> None:
    with pytest.raises(SettingsError):
        KeyBox.from_config(keys, active)


def test_no_keys_means_no_box() -> None:
    assert KeyBox.from_config({}, None) is None
