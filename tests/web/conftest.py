"""Fixtures for the web page tests: a real server process, headless Debian Chromium driven by
Selenium, axe-core from npm (installed on first use into the git-ignored tests/web/artifacts/),
and screenshots saved there too.

Needs Debian's chromium + chromium-driver (.ci/run installs them) and npm. With CI=true a
missing piece fails the tests; elsewhere they skip with the reason. The browser talks to
127.0.0.1 only and has Chromium's background networking turned off."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TIMING_FACTOR, Account
from tests.support.servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "web" / "artifacts"
AXE_DIR = ARTIFACTS / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = "4"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
)


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the web page tests: {reason}")
    pytest.skip(reason)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s * TIMING_FACTOR
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed with npm into tests/web/artifacts/axe on first use."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed (apt-get install npm)")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm or "npm", "install", "--no-audit", "--no-fund", "--silent",
                        "--prefix", str(AXE_DIR), f"axe-core@{AXE_VERSION}"],
                       check=True, timeout=300)
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[dev]')")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30 * TIMING_FACTOR)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def web_server(servers: Callable[..., ServerProcess]) -> ServerProcess:
    """One server process (short drain so a restart in a test is quick)."""
    return servers(WS_DRAIN_S="1", WEBRTC_HOST_ADDRESSES="127.0.0.1")


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def sign_in(driver: Any, base: str, account: Account, next_path: str = "/") -> None:
    """Through the sign-in form, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/signin?next={next_path}")
    wait_for(lambda: driver.find_element(By.ID, "email"), 10, "the sign-in form")
    driver.find_element(By.ID, "email").send_keys(account.email)
    driver.find_element(By.ID, "password").send_keys(account.password)
    driver.find_element(By.ID, "signin-submit").click()
    wait_for(lambda: driver.execute_script("return sessionStorage.getItem('souk.me')"), 10,
             "the session saved")
    wait_for(lambda: driver.execute_script("return location.pathname") == next_path, 10,
             f"landing on {next_path}")


def text_of(driver: Any, element_id: str) -> str:
    value: str = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        element_id)
    return value


def axe_serious(driver: Any, source: str) -> list[dict[str, Any]]:
    """Runs axe-core on the current page; returns its serious and critical violations."""
    driver.execute_script(source)
    result: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r), e => done({error: String(e)}));")
    assert "error" not in result, result
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"][:160] for n in v["nodes"][:3]]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def csp_violations(driver: Any) -> list[str]:
    """Console messages about the Content-Security-Policy since the last call."""
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Content-Security-Policy" in e["message"]]


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False)


async def topped_up(client: httpx.AsyncClient, account: Account, amount: int = 100_000) -> None:
    r = await client.post("/v1/wallet/topups", json={"amount": amount}, headers={
        **account.headers, "Idempotency-Key": f"topup-{account.id}-{amount}"})
    assert r.status_code in (200, 201), r.text
