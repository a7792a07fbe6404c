"""The layering of the code base, checked on its import statements.

Dependencies run one way: ``streams -> state -> schemas``. Inside ``streams`` the
sub-packages have one job each and the edges between them run one way too:

    cli ──► tools, worker, http, pipeline, shared        (the only way into tools)
    worker ──► http, pipeline, shared
    http ──► shared
    pipeline ──► (nothing in streams but itself: pure, no Kafka, Redis or faust)
    shared (settings, topics, kafka_access, redis_sink, metrics, concentration) ──► shared

Every ``import`` counts, also inside functions and ``if TYPE_CHECKING:`` blocks (an
import hidden in a function still ties the modules together; the old ``app <-> web``
cycle went through ``TYPE_CHECKING``). The rules are functions of the import graph, so
``test_each_rule_catches_a_planted_violation`` can show that every one of them fails
on a graph that breaks it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("schemas", "state", "streams")
#: The worker's framework, the Kafka and Redis clients, and metrics: all I/O or runtime.
IMPURE = ("faust", "mode", "aiokafka", "confluent_kafka", "redis", "rocksdict", "prometheus_client")
STREAMS_SUBPACKAGES = ("cli", "http", "pipeline", "tools", "worker")
MAX_LINES = 600
#: Modules allowed over MAX_LINES besides the offline tools (streams/tools/).
SIZE_EXEMPT: set[str] = set()

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> dict[str, Path]:
    return {module_name(p): p for pkg in PROJECT for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module ``path`` imports, anywhere in it: dotted names as written, plus
    ``package.name`` for ``from package import name`` when that is a known module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    return found


def import_graph() -> Graph:
    files = project_files()
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _top(module: str) -> str:
    return module.split(".")[0]


def _shared(module: str) -> bool:
    """A top-level module of streams (not a sub-package, not the package itself)."""
    parts = module.split(".")
    return len(parts) == 2 and parts[0] == "streams" and parts[1] not in STREAMS_SUBPACKAGES


# -- the rules: each returns "importer -> imported" for every violation ---------------


def schemas_import_no_project_package(graph: Graph) -> list[str]:
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if _within(m, "schemas")
        for i in imps
        if _top(i) in PROJECT and _top(i) != "schemas"
    ]


def state_imports_only_schemas(graph: Graph) -> list[str]:
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if _within(m, "state")
        for i in imps
        if _top(i) in PROJECT and _top(i) not in ("state", "schemas")
    ]


def pipeline_is_pure(graph: Graph) -> list[str]:
    """No I/O library, and nothing of streams outside the pipeline (no shared module
    either: it needs none)."""
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if _within(m, "streams.pipeline")
        for i in imps
        if _top(i) in IMPURE or (_top(i) == "streams" and not _within(i, "streams.pipeline"))
    ]


def http_imports_no_worker(graph: Graph) -> list[str]:
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if _within(m, "streams.http")
        for i in imps
        if _within(i, "streams.worker") or _within(i, "streams.cli")
    ]


def only_cli_imports_tools(graph: Graph) -> list[str]:
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if not (_within(m, "streams.cli") or _within(m, "streams.tools"))
        for i in imps
        if _within(i, "streams.tools")
    ]


def shared_modules_import_no_subpackage(graph: Graph) -> list[str]:
    return [
        f"{m} -> {i}"
        for m, imps in graph.items()
        if _shared(m)
        for i in imps
        if any(_within(i, f"streams.{sub}") for sub in STREAMS_SUBPACKAGES)
    ]


def import_cycles(graph: Graph) -> list[str]:
    """Every cycle among project modules (Tarjan's strongly connected components)."""
    edges = {m: {i for i in imps if i in graph and i != m} for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[str] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(" <-> ".join(sorted(component)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


RULES: dict[str, Callable[[Graph], list[str]]] = {
    "schemas imports no project package": schemas_import_no_project_package,
    "state imports only schemas": state_imports_only_schemas,
    "streams.pipeline is pure": pipeline_is_pure,
    "streams.http imports no worker": http_imports_no_worker,
    "only streams.cli imports streams.tools": only_cli_imports_tools,
    "shared streams modules import no sub-package": shared_modules_import_no_subpackage,
    "no import cycles": import_cycles,
}


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()


def test_the_graph_sees_the_imports(graph: Graph) -> None:
    """The parser finds what is there: absolute, in-function and from-package imports."""
    assert "streams.settings" in graph["streams.topics"]
    assert "streams.worker.service" in graph["streams.cli.worker"]  # inside cmd_worker
    assert "streams.cli.worker" in graph["streams.cli"]  # from streams.cli import worker
    assert "faust" in graph["streams.worker.service"]
    assert len(graph) > 60


@pytest.mark.parametrize("rule", RULES)
def test_rule_holds(rule: str, graph: Graph) -> None:
    assert RULES[rule](graph) == []


def test_no_module_outside_the_offline_tools_is_over_600_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for name, path in project_files().items()
        if not _within(name, "streams.tools")
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(too_long) <= SIZE_EXEMPT, too_long
    stale = SIZE_EXEMPT - {str(p.relative_to(ROOT)) for p in project_files().values()}
    assert not stale, f"exempt but gone: {stale}"


def _planted() -> Iterator[tuple[str, Graph]]:
    """(rule, a small graph that breaks exactly that rule)."""
    base: Graph = {
        "schemas.events": set(),
        "state.core": {"schemas.events"},
        "streams.settings": {"schemas.events"},
        "streams.pipeline.processor": {"state.core", "orjson"},
        "streams.http.views": {"streams.settings", "faust"},
        "streams.worker.service": {"streams.http.views", "streams.pipeline.processor"},
        "streams.tools.report": {"streams.settings"},
        "streams.cli.report": {"streams.tools.report"},
    }

    def plant(module: str, imported: str) -> Graph:
        g = {m: set(i) for m, i in base.items()}
        g[module].add(imported)
        return g

    yield "schemas imports no project package", plant("schemas.events", "state.core")
    yield "state imports only schemas", plant("state.core", "streams.settings")
    yield "streams.pipeline is pure", plant("streams.pipeline.processor", "redis.asyncio")
    yield "streams.pipeline is pure", plant("streams.pipeline.processor", "streams.settings")
    yield "streams.http imports no worker", plant("streams.http.views", "streams.worker.service")
    yield (
        "only streams.cli imports streams.tools",
        plant("streams.worker.service", "streams.tools.report"),
    )
    yield (
        "shared streams modules import no sub-package",
        plant("streams.settings", "streams.pipeline.processor"),
    )
    yield (
        "no import cycles",
        plant("streams.settings", "streams.tools.report")
        | {
            "streams.tools.report": {"streams.settings", "streams.cli.report"},
            "streams.cli.report": {"streams.tools.report", "streams.settings"},
        },
    )


def test_each_rule_catches_a_planted_violation() -> None:
    planted = list(_planted())
    assert {rule for rule, _g in planted} == set(RULES)
    for rule, g in planted:
        assert RULES[rule](g), f"{rule!r} did not see its planted violation"
    clean = next(g for _r, g in planted)
    clean["schemas.events"] = set()
    assert all(check(clean) == [] for check in RULES.values())
