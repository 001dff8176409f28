"""Which browser pages may open a websocket (pure).

Browsers send `Origin` on a websocket upgrade and let any page open one to any host
(cross-site websocket hijacking). With an allow-list (WS_ORIGINS) the endpoint refuses upgrades
from other origins with HTTP 403. Clients that send no `Origin` (mobile apps, servers, OBS) are
not browsers and are not affected; an empty allow-list or `*` accepts every origin.
"""

from __future__ import annotations

from collections.abc import Collection


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    if origin is None or not allowed or "*" in allowed:
        return True
    return origin.rstrip("/").lower() in allowed
