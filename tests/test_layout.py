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


ERROR_TEXTS = ("titles", "details")
ERROR_TEXT_FORM = "ClassVar[Mapping[str, str]]"  # as core.errors.AppError declares them


def error_text_problems(path: Path) -> list[str]:
    """Class attributes `titles`/`details` not in AppError's form: `ClassVar[Mapping[str, str]]`
    holding a dict literal keyed by language tags, "en" first."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems: list[str] = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for st in cls.body:
            if isinstance(st, ast.FunctionDef) and st.name in ("title_for", "detail_for"):
                if cls.name != "AppError":
                    problems.append(f"{cls.name}.{st.name}: give `titles`/`details` instead")
                continue
            targets = st.targets if isinstance(st, ast.Assign) else (
                [st.target] if isinstance(st, ast.AnnAssign) else [])
            for name in (t.id for t in targets if isinstance(t, ast.Name)):
                if name not in ERROR_TEXTS:
                    continue
                where = f"{cls.name}.{name} (line {st.lineno})"
                if not isinstance(st, ast.AnnAssign) or ast.unparse(st.annotation) != (
                        ERROR_TEXT_FORM):
                    problems.append(f"{where}: annotate `{name}: {ERROR_TEXT_FORM}`")
                    continue
                keys = [k.value if isinstance(k, ast.Constant) else None
                        for k in getattr(st.value, "keys", [None])]
                if not isinstance(st.value, ast.Dict) or not keys or keys[0] != "en" or not all(
                        isinstance(k, str) for k in keys):
                    problems.append(f"{where}: a dict literal keyed by language, \"en\" first")
    return problems


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_error_texts_have_one_form(path: Path) -> None:
    assert not error_text_problems(path)


def test_error_text_check_catches_other_forms(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "class A(AppError):\n"
        "    titles = {'en': 'x'}\n"
        "    details: ClassVar[dict[str, str]] = {'en': 'x'}\n"
        "class B(AppError):\n"
        "    titles: ClassVar[Mapping[str, str]] = _t('x', 'y')\n"
        "    def detail_for(self, lang: str) -> str: ...\n",
        encoding="utf-8",
    )
    assert len(error_text_problems(bad)) == 4
