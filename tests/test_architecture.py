"""The architecture as a test: imports point down only, no import cycle, rooms of modest size.

Every ``import`` of every module of ``nsopt`` is read from the source (function-level imports
included), so a lazy import cannot hide a cycle.  See docs/architecture.md.
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nsopt"

#: Rooms by level: a room may import rooms of a strictly lower level, and its own room.
LEVELS = {
    "failures": 0, "validate": 0, "cpu_threads": 0,
    "schedules": 1, "nonsmooth": 1,
    "implicit": 2, "oracles": 2,
    "algorithms": 3, "layers": 3,
    "problems": 4, "flow": 4,
    "presets": 5,
    "app": 6, "report": 7, "__main__": 7,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py") if "conf" not in p.relative_to(PKG).parts}


def _resolve(name: str) -> str | None:
    """The nsopt module an imported dotted name refers to (the longest known prefix)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _imports(mod: str) -> set[str]:
    tree = ast.parse(MODULES[mod].read_text())
    is_pkg = MODULES[mod].name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = mod.split(".")[: len(mod.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for n in names:
            if n.startswith("nsopt"):
                target = _resolve(n)
                if target and target != mod:
                    out.add(target)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _room(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "nsopt"


def test_every_room_has_a_level():
    rooms = {_room(m) for m in MODULES} - {"nsopt"}
    assert rooms <= set(LEVELS), f"rooms without a level in this test: {rooms - set(LEVELS)}"


def test_imports_point_down_only():
    bad = []
    for mod, targets in GRAPH.items():
        src = _room(mod)
        if src == "nsopt":  # the package's public re-exports
            continue
        for t in targets:
            dst = _room(t)
            if dst == src or t == "nsopt":  # ``from nsopt import validate`` names the package itself
                continue
            if LEVELS[dst] >= LEVELS[src]:
                bad.append(f"{mod} -> {t}")
    assert not bad, "imports that do not point down:\n" + "\n".join(sorted(bad))


def test_no_import_cycle_between_modules():
    graph = {m: {t for t in ts if t != "nsopt"} for m, ts in GRAPH.items() if m != "nsopt"}
    # strongly connected components (Tarjan); a component of size > 1 is a cycle
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    cycles = [sorted(c) for c in comps if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_modules_are_small(mod):
    lines = len(MODULES[mod].read_text().splitlines())
    assert lines <= 520, f"{mod} has {lines} lines; split it (one concept per module)"


def test_a_broken_edge_is_caught():
    """The checker itself can fail: an app import from a core room is an upward edge."""
    assert LEVELS["app"] > LEVELS["algorithms"]
    assert _resolve("nsopt.app.cli.main") == "nsopt.app.cli"
