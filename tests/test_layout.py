"""The dependency rules of ARCHITECTURE.md, enforced by walking every module's imports."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "realtime", "auctions", "streaming", "tracking", "api", "loadtests", "testkit")
# Helpers for tests/ and loadtests/ only (real servers, isolation): no server package imports
# them, and loadtests/ imports testkit/, never tests/.
TOOLS = ("loadtests", "testkit")
DOMAINS = ("realtime", "auctions", "streaming", "tracking")
IO_LIBRARIES = ("asyncio", "redis", "asyncpg", "aiortc", "starlette", "uvicorn", "websockets")
# Modules holding pure rules: no I/O libraries, time enters as an argument.
PURE_NAMES = (
    "rules.py",
    "engine.py",
    "batch.py",
    "protocol.py",
    "channels.py",
    "filters.py",
    "model.py",
    "machine.py",
    "session.py",
)
FORBIDDEN_MODULE_NAMES = {
    "redis.py",
    "types.py",
    "logging.py",
    "queue.py",
    "asyncio.py",
    "json.py",
    "http.py.bak",
    "asyncpg.py",
    "websockets.py",
    "uuid.py",
}


def modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def owner(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_dependency_direction(path: Path) -> None:
    pkg = owner(path)
    imports = imported_packages(path) & {*PACKAGES, "tests"}
    if pkg == "core":
        assert imports <= {"core"}, f"core must import no in-repo package: {imports}"
    elif pkg in DOMAINS:
        assert imports <= {"core", pkg}, f"{pkg} may import only core: {imports - {'core', pkg}}"
    # api is the composition root: only tools outside the server (loadtests) may import it,
    # and nothing in the server imports the load tests.
    if pkg not in ("api", *TOOLS):
        assert "api" not in imports
    if pkg != "loadtests":
        assert "loadtests" not in imports
    if pkg not in TOOLS:
        assert "testkit" not in imports, "only tests/ and loadtests/ use testkit/"
    # tests/ is not a library: loadtests/ and testkit/ share helpers through testkit/
    assert "tests" not in imports, f"{pkg} imports tests/: move the helper to testkit/"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if p.name in PURE_NAMES and owner(p) not in TOOLS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_modules_do_no_io(path: Path) -> None:
    imports = imported_packages(path)
    assert not imports & set(IO_LIBRARIES), (
        f"pure module imports I/O: {imports & set(IO_LIBRARIES)}"
    )
    text = path.read_text(encoding="utf-8")
    assert "time.time(" not in text and "datetime.now(" not in text, "time must be an argument"


def test_no_module_shadows_stdlib_or_dependency() -> None:
    bad = [str(p.relative_to(ROOT)) for p in modules() if p.name in FORBIDDEN_MODULE_NAMES]
    assert not bad


@pytest.mark.parametrize("pkg", PACKAGES)
def test_packages_resolve_inside_repo(pkg: str) -> None:
    """Top-level names like `realtime` also exist on PyPI: ours must win."""
    spec = importlib.util.find_spec(pkg)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().is_relative_to(ROOT)


# api/ packages other api/ packages build on: they import no other api/ package (stock counters
# are moved by checkout, orders and auctions; none of those may be needed to move them).
API_LEAVES = ("stock",)


def api_subpackages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("api.") and a.name.count(".") >= 1)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "api":
                names.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
    return names


@pytest.mark.parametrize(
    "path", [p for leaf in API_LEAVES for p in (ROOT / "api" / leaf).rglob("*.py")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_api_leaf_packages_import_no_other_api_package(path: Path) -> None:
    leaf = path.relative_to(ROOT / "api").parts[0]
    others = api_subpackages(path) - {leaf}
    assert not others, f"api/{leaf} imports {others}: it is a leaf other api packages build on"
