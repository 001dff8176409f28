"""The aioice internal that streaming.ice_hosts replaces is still where it was."""

from __future__ import annotations

import inspect

import aioice.ice
import pytest

from streaming import ice_hosts


def test_aioice_still_looks_host_addresses_up_at_call_time() -> None:
    for name in ice_hosts.RELIED_ON:
        assert hasattr(aioice.ice, name), f"aioice.ice.{name} is gone: streaming.ice_hosts breaks"
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == [
        "use_ipv4", "use_ipv6"]
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source, "gather_candidates no longer calls it by name"


async def test_a_connection_gathers_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    ice_hosts.use_host_addresses(["127.0.0.1"])
    connection = aioice.ice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        assert [c.host for c in connection.local_candidates] == ["127.0.0.1"]
    finally:
        await connection.close()


def test_no_address_or_a_bad_one_is_refused() -> None:
    with pytest.raises(ValueError, match="address"):
        ice_hosts.use_host_addresses([])
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        ice_hosts.use_host_addresses(["not-an-ip"])
