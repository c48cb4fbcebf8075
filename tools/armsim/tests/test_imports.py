"""armsim's own import graph: every import between armsim modules points one way (no cycles, even
through imports inside functions), and model.py stays a leaf that knows nothing of the route modules.

Read with ``ast`` rather than by importing, so a function-level import that would only close a cycle
at call time is caught too."""

import ast
import graphlib
from pathlib import Path

import pytest

ARMSIM = Path(__file__).resolve().parent.parent
MODULES = {p.stem for p in ARMSIM.glob("*.py")}


def armsim_imports(path: Path) -> set[str]:
    """The armsim modules ``path`` imports, at any depth (module level, functions, if-blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == "armsim" and rest:
                    found.add(rest.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("armsim."):  # from armsim.x import ...
                found.add(node.module.split(".")[1])
            elif (node.level == 0 and node.module == "armsim") or (node.level == 1 and not node.module):  # from armsim import x
                found.update(alias.name for alias in node.names if alias.name in MODULES)
            elif node.level == 1:  # from .x import ...
                found.add(node.module.split(".")[0])
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    return {p.stem: armsim_imports(p) for p in ARMSIM.glob("*.py")}


def test_graph_is_read():
    """Guard against a parser that sees nothing (an empty graph has no cycles either)."""
    graph = import_graph()
    assert {"model", "arm"} <= graph["compute"]
    assert {"compute", "jit", "network"} <= graph["server"]


def test_no_import_cycles():
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"armsim import cycle: {' -> '.join(exc.args[1])}")
    assert set(order) >= MODULES


def test_model_is_a_leaf():
    """model.py is the data every route module shares; it must not reach back up into them."""
    assert import_graph()["model"] == set()
