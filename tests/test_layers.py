"""The package's modules form layers (README, "Layout"): no import cycle, also through imports
inside functions, and the run cache's storage sits below training and the reference source."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import lnlab

PACKAGE = Path(lnlab.__file__).parent
MODULES = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}


def _imports(module: str) -> set[str]:
    """The lnlab modules ``module`` imports anywhere in its source (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "lnlab":
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("lnlab.")}
    return (found & MODULES) - {module}


GRAPH = {module: _imports(module) for module in sorted(MODULES)}


def test_the_graph_is_read_from_the_sources():
    # the reader sees module-level and function-local imports alike (cli imports everything inside functions)
    assert {"store", "portable", "shipped", "profiles", "train"} <= GRAPH["runs"]
    assert {"runs", "suite", "profiles"} <= GRAPH["cli"]


def test_no_module_imports_one_that_imports_it_back():
    try:
        order = list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle among lnlab modules: {' -> '.join(error.args[1])}") from None
    assert set(order) == MODULES


def _below(module: str) -> set[str]:
    """Every module ``module`` reaches through imports."""
    seen, todo = set(), [module]
    while todo:
        for dep in GRAPH[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_storage_sits_below_training_and_the_reference_source():
    upper = {"runs", "train", "shipped", "profiles", "suite", "sweep", "cli", "plots", "widgets", "bound_widgets",
             "toy_widgets", "report"}
    for module, not_below in [("store", upper), ("portable", upper), ("shipped", {"runs", "profiles", "train"}),
                              ("train", {"runs", "store", "portable", "shipped", "profiles"})]:
        reached = _below(module) & not_below
        assert not reached, f"lnlab.{module} reaches up into {sorted(reached)}"


def test_a_network_lnlab_did_not_train_enters_below_figures_tables_and_training():
    # the adapter and the recorder answer what a run answers; the figures, tables and explorers take them unchanged
    above = {"runs", "train", "profiles", "suite", "sweep", "cli", "plots", "widgets", "bound_widgets", "toy_widgets",
             "explorer", "report", "tables", "calibration", "tau", "live"}
    for module in ("foreign", "recorder"):
        reached = _below(module) & above
        assert not reached, f"lnlab.{module} reaches up into {sorted(reached)}"
    for module in ("plots", "widgets", "bound_widgets", "toy_widgets", "calibration", "tables", "tau", "evaluate",
                   "store"):
        assert not {"foreign", "recorder"} & _below(module), f"lnlab.{module} special-cases networks lnlab did not train"
