"""The import rule of docs/architecture.md, checked on the source: the core imports nothing above it; evaluation and
integrations import the core, never each other (nor the apps); no import cycle among module-level imports.

Imports inside functions count for the layer rule (they are still a dependency); for cycles only module-level imports
count (a function-level import is resolved at call time, when every module is loaded). Also checked here: no
module-level mutable state written by functions (no hidden caches), and no module over about 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medground_eval"

LAYERS = {"evaluation": "evaluation", "integrations": "integrations", "inference": "integrations",
          "cli": "apps", "demo": "apps", "training": "apps", "synth": "apps", "tiny_model": "apps", "__main__": "apps"}
"""The first component under ``medground_eval`` -> its layer; anything else is the core."""

MAY_IMPORT = {"core": {"core"}, "evaluation": {"core", "evaluation"}, "integrations": {"core", "integrations"},
              "apps": {"core", "evaluation", "integrations", "apps"}}

KNOWN_CROSSINGS: set[tuple[str, str]] = set()
"""Imports against the rule that are known and allowed: none (the runs' orchestration lives in ``training/``)."""


def _layer(module: str) -> str:
    parts = module.split(".")
    return LAYERS.get(parts[1], "core") if len(parts) > 1 else "core"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _statements(body: list[ast.stmt]):
    """Module-level statements, into the blocks of if / with / try (not into functions or classes)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.With, ast.Try)):
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []),
                          *[h.body for h in getattr(node, "handlers", [])]):
                yield from _statements(block)


def _imports(path: Path, module: str, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _statements(tree.body) if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("medground_eval"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("medground_eval"))
    return names


def test_layers_import_only_downwards():
    crossings = set()
    for module, path in _modules().items():
        for target in _imports(path, module, top_level_only=False):
            if _layer(target) not in MAY_IMPORT[_layer(module)]:
                crossings.add((module, target))
    assert crossings - KNOWN_CROSSINGS == set(), "imports against the layer rule (docs/architecture.md)"
    assert KNOWN_CROSSINGS - crossings == set(), "a known crossing is gone: remove it from KNOWN_CROSSINGS"


def test_core_imports_no_evaluation_integrations_or_cli():
    for module, path in _modules().items():
        if _layer(module) == "core":
            above = {t for t in _imports(path, module, top_level_only=False) if _layer(t) != "core"}
            assert not above, f"{module} (core) imports {sorted(above)}"


def test_no_import_cycle():
    modules = _modules()
    graph = {m: {t for t in _imports(p, m, top_level_only=True) if t in modules and t != m}
             for m, p in modules.items()}
    # a package's submodule imports its package's __init__ implicitly: that edge is not a cycle of ours
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_structures_and_parsing_no_longer_import_each_other():
    modules = _modules()
    structures = _imports(modules["medground_eval.structures"], "medground_eval.structures", top_level_only=False)
    assert "medground_eval.parsing" not in structures


MUTATING_METHODS = {"append", "appendleft", "extend", "add", "update", "setdefault", "pop", "popitem", "clear",
                    "insert", "remove", "discard", "move_to_end"}
MODULE_STATE = {
    # the loader registry, filled once by @register_dataset when datasets/ is imported
    ("medground_eval.datasets.base", "_LOADERS"),
    # the process's engine reward, built once from $MEDGROUND_REWARD_CONFIG: verl / EasyR1 / OpenRLHF call the
    # adapters' module functions per sample or batch and hold no object of ours (a configured reward, not results)
    ("medground_eval.integrations.reward_config", "_REWARDS"),
}
"""Module-level containers that functions write into, and why; the list may only shrink."""


def _is_mutable_value(node: ast.expr) -> bool:
    if isinstance(node, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    name = getattr(node, "func", None)
    name = getattr(name, "id", getattr(name, "attr", None))
    return isinstance(node, ast.Call) and name in {"dict", "list", "set", "OrderedDict", "deque", "defaultdict",
                                                   "Counter", "WeakKeyDictionary", "WeakValueDictionary"}


def test_no_module_level_mutable_cache():
    """No hidden state: no functools cache on a module-level function, no ``global`` rebinding, and no module-level
    container that a function writes into, except :data:`MODULE_STATE`."""
    found = set()
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        containers = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) and node.value is not None else []
            if targets and _is_mutable_value(node.value):
                containers |= {t.id for t in targets if isinstance(t, ast.Name)}
            if isinstance(node, ast.FunctionDef):
                cached = [ast.unparse(d) for d in node.decorator_list if "cache" in ast.unparse(d)]
                assert not cached, f"{module}.{node.name}: module-level cache {cached}"
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                assert not isinstance(node, ast.Global), f"{module}.{function.name}: global {node.names}"
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and isinstance(node.func.value, ast.Name) and node.func.attr in MUTATING_METHODS:
                    name = node.func.value.id
                elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                    targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                    names = [t.value.id for t in targets if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)]
                    name = names[0] if names else None
                else:
                    continue
                if name in containers:
                    found.add((module, name))
    assert found - MODULE_STATE == set(), "module-level state written by functions (docs/architecture.md)"
    assert MODULE_STATE - found == set(), "a listed module state is gone: remove it from MODULE_STATE"


MAX_LINES = 500
OVER_MAX_LINES = {"medground_eval.metrics", "medground_eval.parsing", "medground_eval.rewards.encoders",
                  "medground_eval.boxes"}
"""Modules still over :data:`MAX_LINES` (issue 11: metrics, parsing, encoders being split; boxes grew past it with
issue 16's batched union areas); the set may only shrink."""


def test_no_module_over_500_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= OVER_MAX_LINES, f"modules over {MAX_LINES} lines: split them by job ({long})"
