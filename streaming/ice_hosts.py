"""Which addresses aioice gathers ICE host candidates on — the one use of aioice internals here.

aioice's ``get_host_addresses`` lists every interface address but 127.0.0.1 and ::1 (RFC 8445
§5.1.1.1), so on a loopback-only machine a peer offers no candidate at all. Clients that talk to
a server on 127.0.0.1 (tests, demos, load generators) replace it with a fixed list.
tests/streaming/test_ice_hosts.py fails loudly if an aioice upgrade moves what this relies on:
the module-level function ``aioice.ice.get_host_addresses(use_ipv4, use_ipv6)`` that
``Connection.gather_candidates`` looks up at call time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice

RELIED_ON = ("get_host_addresses",)


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates on exactly ``addresses`` (IPv4 or IPv6) in this process."""
    chosen = [str(ipaddress.ip_address(a)) for a in addresses]
    if not chosen:
        raise ValueError("at least one address")

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a for a in chosen
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    aioice.ice.get_host_addresses = get_host_addresses
