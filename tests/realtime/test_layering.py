"""realtime imports only core (and third-party packages); its pure modules do no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IN_REPO = {"core", "realtime", "auctions", "streaming", "tracking", "api", "loadtests", "tests"}
PURE = {"channels.py", "protocol.py"}
IO_MODULES = {"asyncio", "redis", "asyncpg", "starlette", "uvicorn", "websockets", "aiortc"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_realtime_depends_only_on_core() -> None:
    for path in (ROOT / "realtime").glob("*.py"):
        in_repo = _imports(path) & IN_REPO
        assert in_repo <= {"core", "realtime"}, (path.name, in_repo)
        if path.name in PURE:
            assert not _imports(path) & IO_MODULES, path.name
