"""The OpenAPI document is as strict as the server (issue 17, finding 7): a bounded, seeded
schemathesis run with `--checks all` for a buyer, a seller and an admin token against a real
server process finds 0 failures."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Register
from tests.support.servers import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("SOUK_SCHEMATHESIS_EXAMPLES", "8"))
SEED = 17
# Rate limits off: schemathesis sends thousands of requests from one address.
KEY = base64.b64encode(b"s" * 32).decode()
UNLIMITED = {"ENCRYPTION_KEYS": f"k1:{KEY}", "ENCRYPTION_ACTIVE_KID": "k1","LOGIN_RATE_PER_ADDRESS": "100000", "LOGIN_RATE_PER_ACCOUNT": "100000",
             "LOGIN_FAILURES_PER_ADDRESS": "10000", "REGISTER_RATE_PER_ADDRESS": "100000",
             "CHECKOUT_RATE": "100000", "TOPUP_RATE": "100000", "CHAT_RATE": "10000"}


def run_schemathesis(server: ServerProcess, token: str, report: Path) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", f"{server.url}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--generation-deterministic", "--header", f"Authorization: Bearer {token}",
        "--request-timeout", "20", "--no-color", "--continue-on-failure",
        "--phases", "examples,coverage,fuzzing",
        # logout would revoke the run's own token; the websocket endpoint is not HTTP
        "--exclude-path", "/v1/auth/logout", "--exclude-path", "/v1/ws",
        # auctions/ (another package's rules, not yet stated in its schema): a bid needs bid_id
        # OR an Idempotency-Key header; an increment table has cross-row rules
        "--exclude-path-regex", "^/v1/auctions",
        # OsmAnd (tracking/osmand.py), documented as the Traccar Client app may send it: the
        # position is `lat`+`lon` OR `location=lat,lon` (or, in a POST, a form or JSON body), the
        # key `id` OR `deviceid` (or the JSON body's `device_id`), and an empty value is absent.
        # Which parameter is required depends on which others (or which body) are present: no
        # OpenAPI parameter list can say that, and narrowing it would refuse what the app sends.
        # tests/tracking/test_osmand.py and test_devices.py hold the server to the protocol.
        "--exclude-path", "/v1/tracking/osmand",
        # WHIP/WHEP offers are application/sdp: schemathesis has no serializer for it and JSON
        # Schema cannot state SDP's grammar (tests/streaming/test_http.py drives these with
        # real offers). PATCH stays in: schemathesis.toml expects its documented 405.
        # (exact names: the CLI ANDs all its *-regex options into one filter)
        "--exclude-name", "POST /v1/shows/{show_id}/whip",
        "--exclude-name", "POST /v1/shows/{show_id}/whep",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout[-20_000:] + done.stderr[-5_000:]


@pytest.mark.parametrize("role", ["buyer", "seller", "admin"])
async def test_schemathesis_finds_no_failure(
    role: str, servers: Callable[..., ServerProcess], register: Register, tmp_path: Path
) -> None:
    server = servers(**UNLIMITED)
    account = await register(role)
    code, output = run_schemathesis(server, account.access_token, tmp_path / "junit.xml")
    assert code == 0, output
