"""The dependency rules of ARCHITECTURE.md, enforced by walking every module's imports."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
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
    "sdp.py",  # streaming: the offer rules split out of session.py
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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports run when a module is loaded: not in functions, not under TYPE_CHECKING."""
    for st in body:
        if isinstance(st, ast.Import | ast.ImportFrom):
            yield st
        elif isinstance(st, ast.If):
            if ast.unparse(st.test) not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                yield from _top_level_imports(st.body)
            yield from _top_level_imports(st.orelse)
        elif isinstance(st, ast.Try):
            for block in (st.body, *(h.body for h in st.handlers), st.orelse, st.finalbody):
                yield from _top_level_imports(block)
        elif isinstance(st, ast.With):
            yield from _top_level_imports(st.body)


def import_graph() -> dict[str, set[str]]:
    """Each in-repo module of PACKAGES -> the in-repo modules its top-level imports load."""
    paths = {module_name(p): p for p in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for st in _top_level_imports(tree.body):
            if isinstance(st, ast.Import):
                deps.update(a.name for a in st.names if a.name in paths)
                continue
            base = st.module or ""
            if st.level:
                base = ".".join([*package[: len(package) - st.level + 1], *filter(None, [base])])
            for alias in st.names:
                full = f"{base}.{alias.name}"
                deps.update(m for m in (full if full in paths else base,) if m in paths)
        graph[name] = deps - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while not component or component[-1] != node:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "core.errors" in graph["api.shows.chat"]  # the graph sees imports
    assert not import_cycles(graph), "modules importing each other at load time"


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


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
