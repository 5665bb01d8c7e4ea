"""The package's shape: no import cycles, no benchmarks inside, docstrings, small files and functions.

Every check reads the source with `ast` (nothing is imported), so an import hidden inside a
function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "reprolib"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 50
MAX_PARAMETERS = 8
LONG_REASON, MANY_REASON = "Long because", "Many parameters because"


def module_name(path: Path) -> str:
    """`reprolib/sparsity/masks.py` -> `reprolib.sparsity.masks`; a package's __init__ is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of reprolib by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _base_of(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module a `from X import ...` names, relative imports included."""
    if not node.level:
        return node.module or ""
    anchor = importer.split(".")
    anchor = anchor if is_package else anchor[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The reprolib modules `path` imports anywhere (top level or inside functions).

    `from reprolib.x import y` is module `reprolib.x.y` when y is a submodule, else `reprolib.x`;
    `import reprolib.x.y` is `reprolib.x.y`.
    """
    importer = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, importer, path.name == "__init__.py")
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {m for m in found if m in modules and m != importer}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest import path from `start` back to itself inside one component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & within):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    return []


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """One line per cycle: every mutual pair, and one shortest cycle per component from each member."""
    lines = set()
    for component in strongly_connected(graph):
        members = set(component)
        for node in component:
            cycle = shortest_cycle(graph, node, members)
            turn = cycle[:-1].index(min(cycle[:-1]))      # print each cycle once, from its smallest name
            canonical = cycle[turn:-1] + cycle[:turn] + [cycle[turn]]
            lines.add(" -> ".join(canonical))
    return sorted(lines)


def test_the_graph_sees_imports_inside_functions_and_submodules():
    graph = import_graph()
    # reprolib.study.ledger_cli imports reprolib.config only inside run(); from-imports of a submodule count.
    assert "reprolib.config" in graph["reprolib.study.ledger_cli"]
    assert "reprolib.paths" in graph["reprolib.config"]
    assert all(m.startswith("reprolib") for targets in graph.values() for m in targets)


def test_cycle_finder_reports_each_cycle():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"b"}, "e": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c", "d"]]
    assert cycles(graph) == ["a -> b -> a", "b -> c -> d -> b"]


def test_no_import_cycles():
    found = cycles(import_graph())
    print("\n".join(found))
    assert not found, f"{len(found)} import cycles: " + "; ".join(found)


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph with each module folded into its subpackage (reprolib.sparsity.masks -> reprolib.sparsity)."""
    def fold(name: str) -> str:
        return ".".join(name.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        folded.setdefault(fold(module), set()).update(fold(t) for t in targets)
    return {name: targets - {name} for name, targets in folded.items()}


def test_no_import_cycles_between_subpackages():
    # Data flows one way (ARCHITECTURE.md): e.g. models must not need sparsity while sparsity builds models.
    found = cycles(subpackage_graph(import_graph()))
    print("\n".join(found))
    assert not found, f"{len(found)} cycles between subpackages: " + "; ".join(found)


def test_no_benchmark_module_inside_the_package():
    inside = [name for name in package_modules() if any(part.startswith("bench") for part in name.split("."))]
    assert not inside, f"benchmarks belong in bench/, not in the package: {inside}"
    assert (REPO / "bench" / "bench.py").is_file()


def test_every_module_has_a_docstring():
    missing = [name for name, path in package_modules().items() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_file_in_the_package_is_over_400_lines():
    long_files = {name: n for name, path in package_modules().items()
                  if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"


@dataclass
class Offender:
    where: str
    lines: int
    parameters: int

    def __str__(self) -> str:
        return f"{self.where} ({self.lines} lines, {self.parameters} parameters)"


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return len([a for a in named if a not in ("self", "cls")])


def oversized_functions(files: list[Path]) -> list[Offender]:
    """Functions over 50 lines or 8 parameters whose docstring gives no reason for it.

    A reason is a docstring line starting "Long because" (length) or "Many parameters because".
    """
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines, parameters = node.end_lineno - node.lineno + 1, _parameter_count(node)
            reasons = [line.strip() for line in (ast.get_docstring(node) or "").splitlines()]
            too_long = lines > MAX_FUNCTION_LINES and not any(r.startswith(LONG_REASON) for r in reasons)
            too_many = parameters > MAX_PARAMETERS and not any(r.startswith(MANY_REASON) for r in reasons)
            if too_long or too_many:
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
                found.append(Offender(f"{where}:{node.lineno} {node.name}", lines, parameters))
    return found


def test_size_check_counts_lines_and_parameters(tmp_path):
    source = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(55))
    source.write_text(f"def long():\n{body}\n\n"
                      f"def reasoned(a, b, c, d, e, f, g, h, i):\n    '''Doc.\n\n    Many parameters because x.'''\n\n"
                      f"def method(self, a, b, c, d, e, f, g, h):\n    pass\n")
    assert [str(o).split(" ", 1)[1] for o in oversized_functions([source])] == ["long (56 lines, 0 parameters)"]


def test_no_oversized_function_without_a_reason():
    files = sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "bench").glob("*.py"))
    offenders = oversized_functions(files)
    print("\n".join(map(str, offenders)))
    assert not offenders, f"{len(offenders)} functions over {MAX_FUNCTION_LINES} lines or {MAX_PARAMETERS} " \
                          f"parameters without a reason:\n" + "\n".join(map(str, offenders))


def room_of(module: str) -> str | None:
    """The room a module sits in: its top-level module or subpackage (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def room_floors() -> dict[str, int]:
    """Room -> floor: 1 for a room that imports no other room, else one above the highest it imports."""
    rooms: dict[str, set[str]] = {}
    for module, imported in import_graph().items():
        room = room_of(module)
        if room is not None:
            rooms.setdefault(room, set()).update(r for r in map(room_of, imported) if r not in (None, room))
    floors: dict[str, int] = {}

    def floor(room: str) -> int:
        if room not in floors:
            floors[room] = 1 + max((floor(r) for r in rooms[room]), default=0)
        return floors[room]

    for room in rooms:
        floor(room)
    return floors


def floors_block() -> str:
    """ARCHITECTURE.md's floors block: 'floor N  room room ...', top floor first."""
    floors = room_floors()
    lines = []
    for level in sorted(set(floors.values()), reverse=True):
        rooms = sorted(r for r, f in floors.items() if f == level)
        lines.append(f"floor {level}  " + " ".join(f"{r}.py" if (PACKAGE / f"{r}.py").is_file() else f"{r}/" for r in rooms))
    return "\n".join(lines)


def test_the_floors_below_are_the_code_s() -> None:
    """ARCHITECTURE.md's "Who imports whom" block is what the imports say now."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    marker = "<!-- floors: generated from the imports; keep in sync with tests/test_architecture.py -->\n```\n"
    assert marker in text, "ARCHITECTURE.md lost its floors block"
    written = text.split(marker, 1)[1].split("\n```", 1)[0]
    assert written == floors_block(), "ARCHITECTURE.md's floors are stale; paste floors_block():\n" + floors_block()
