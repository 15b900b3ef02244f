"""The one dependency rule of docs/architecture.md, read from the source: layers import only
downwards, and no two modules import each other (directly or around a cycle).

The imports are read with :mod:`ast` (nothing is imported), including imports inside functions:
a deferred import is still a dependency. For the layers, imports for the type checker count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import evtrade

SRC = Path(evtrade.__file__).parent

#: What each layer may import (besides itself). The edges (cli, service) sit on top; the core
#: (market) and the data (model) import nothing above them; the ledger is an adapter behind the
#: settlement port. errors.py is the root everyone may import. The package root ("evtrade": the
#: public API and __version__) imports market and model, so only layers above them may import it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "model": {"errors"},
    "market": {"model", "errors"},
    "settlement": {"market", "model", "errors", "evtrade"},
    "ledger": {"settlement", "market", "model", "errors", "evtrade"},
    "sim": {"market", "model", "errors", "evtrade"},
    "bench": {"sim", "market", "model", "errors", "evtrade"},
    "service": {"ledger", "settlement", "market", "model", "errors", "evtrade"},
    "cli": {
        *("service", "ledger", "settlement", "sim", "bench", "market", "model", "errors"),
        "evtrade",
    },
    # The package root re-exports the public API; `python -m evtrade` runs the CLI.
    "evtrade": {"market", "model", "errors"},
    "__main__": {"cli"},
}

#: Arrows the rule does not allow that exist today, each with why it is still there. The test
#: fails when one disappears too, so that this list only shrinks.
KNOWN: dict[str, str] = {}


def _module(path: Path) -> str:
    parts = ["evtrade", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "evtrade"


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST, *, runtime_only: bool) -> list[ast.AST]:
    """Every node of ``tree``, without the bodies of ``if TYPE_CHECKING:`` when ``runtime_only``."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if runtime_only and _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """The evtrade modules ``path`` imports (``from evtrade import x`` counts as evtrade.x when
    x is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in _nodes(tree, runtime_only=runtime_only):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "evtrade"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "evtrade":
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found = {s for s in subs if _is_module(s)}
            out |= found or {node.module}
            if found != subs:
                out.add(node.module)
    return out


FILES = sorted(SRC.rglob("*.py"))


def test_the_tree_was_found() -> None:
    layers = {_layer(_module(p)) for p in FILES}
    assert {"model", "market", "settlement", "ledger", "service", "cli"} <= layers


def test_every_layer_imports_only_what_the_rule_allows() -> None:
    wrong = []
    for path in FILES:
        mod = _module(path)
        layer = _layer(mod)
        assert layer in ALLOWED, f"{mod}: layer {layer!r} is not in the rule (add it)"
        for target in sorted(_imports(path, runtime_only=False)):
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{mod} -> {target}")
    assert sorted(set(wrong) - set(KNOWN)) == []
    assert sorted(set(KNOWN) - set(wrong)) == [], "a known exception is gone: drop it from KNOWN"


def test_no_import_cycle_between_modules() -> None:
    # Imports only for the type checker (under `if TYPE_CHECKING:`) do not run, so cannot cycle.
    graph = {_module(p): _imports(p, runtime_only=True) for p in FILES}
    # A package's __init__ importing its own submodules is how a package exports them, not a
    # cycle; a submodule importing its package's __init__ back would be (it is kept).
    for mod, targets in graph.items():
        graph[mod] = {t for t in targets if t != mod and not t.startswith(mod + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        stack.append(mod)
        for nxt in sorted(graph.get(mod, set())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert cycles == []
