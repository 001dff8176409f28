"""Every benchmark module imports: they are not type-checked and most are not run by the
suite, so a name the product drops would otherwise break them unnoticed."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import loadtests

ALL = sorted(m.name for m in pkgutil.walk_packages(loadtests.__path__, "loadtests."))
# importing locust monkey-patches the whole process for gevent: these modules (the locust
# users and the locustfile) are imported in a child process, never in the test runner
ON_GEVENT = {"loadtests.locustfile", *(f"loadtests.crowd.{m}" for m in (
    "base", "viewers", "bidders", "chatters", "shoppers", "sellers", "riders", "whep"))}
MODULES = [m for m in ALL if m not in ON_GEVENT]


def test_there_are_benchmarks() -> None:
    assert "loadtests.auction_hub" in MODULES and "loadtests.auction_redis" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_locust_modules_import_in_a_child(tmp_path: Path) -> None:
    """The locustfile reads its plan at import and gives every role its user count."""
    assert set(ALL) >= ON_GEVENT
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "base_url": "http://127.0.0.1:1", "started_at": 0, "seconds": 1, "warmup_s": 0,
        "show_id": "s", "auction_id": "a", "auction_ends_at_ms": 0, "frenzy_s": 0,
        "flash_variant_id": "f", "flash_units": 1, "flash_at": 0, "catalog_variant_ids": [],
        "counts": {"viewers": 3, "whep": 2}}))
    code = ("import importlib, sys\n"
            f"for m in {sorted(ON_GEVENT)!r}: importlib.import_module(m)\n"
            "lf = sys.modules['loadtests.locustfile']\n"
            "print({c.role: c.fixed_count for c in lf.USER_CLASSES})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"SOUK_PLAN": str(plan), "PATH": ""}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str({"viewers": 3, "bidders": 0, "chatters": 0, "shoppers": 0,
                                       "sellers": 0, "riders": 0, "whep": 2})
