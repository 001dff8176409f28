"""Every benchmark module imports: they are not type-checked and most are not run by the
suite, so a name the product drops would otherwise break them unnoticed."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import loadtests

MODULES = sorted(m.name for m in pkgutil.walk_packages(loadtests.__path__, "loadtests."))


def test_there_are_benchmarks() -> None:
    assert "loadtests.auction_hub" in MODULES and "loadtests.auction_redis" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
