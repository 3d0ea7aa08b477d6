"""The import graph of the packages: no cycles, and no import that runs against the layers.

Layers, lowest first (docs/architecture.md): `harness` (the machinery) knows no family and no suite;
`implementations` may use the harness's interface but no suite; `suites` use both. Every import counts,
also one inside a function or under `if TYPE_CHECKING:`: a cycle hidden in a function still means two
modules that cannot be understood (or moved) one without the other. What a module loads by a dotted
name at run time (the registries' discovery, a job's target) is data, not an import, and is not seen.

Run as a script to print the graph's cycles and backwards imports: `python tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "implementations", "suites")

# (importer prefix, imported prefix, why not)
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("harness", "suites", "the harness knows no suite: suites register themselves (harness.suite)"),
    ("harness", "implementations", "the harness knows no family: families register themselves (harness.registry)"),
    ("implementations", "suites", "a family does not depend on a suite"),
    ("suites", "harness.commands.run", "suites take their machinery from harness.suite, not from the CLI"),
    ("harness.report", "harness.commands", "the report is a library; the CLI calls it, not the other way"),
)


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package is its __init__)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every name an import statement anywhere in the tree brings in, as `package.module[.attribute]`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            # `from a import b` names the module a.b where there is one, else (an attribute) the module a.
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports (an attribute import counts as its module)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            # `from harness import results` names the module harness.results; `from harness.x import f`
            # names harness.x; importing a submodule is not counted as importing its parent package.
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def backwards_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} imports {target}: {why}"
        for source, targets in graph.items()
        for target in targets
        for importer, imported, why in FORBIDDEN
        if _within(source, importer) and _within(target, imported)
    )


def test_the_graph_sees_the_imports() -> None:
    """The walk must find what is plainly there, or an empty result would prove nothing."""
    graph = import_graph()
    assert "harness.results" in graph["harness.runner"]
    assert "harness.interface" in graph["harness.registry"]
    assert len(graph) > 50


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_backwards_imports() -> None:
    found = backwards_imports(import_graph())
    assert not found, "imports against the layers:\n" + "\n".join(found)


if __name__ == "__main__":
    graph = import_graph()
    found = cycles(graph)
    print(f"{len(graph)} modules, {len(found)} import cycle(s) (strongly connected components):")
    for component in found:
        print("  " + " <-> ".join(component))
    backwards = backwards_imports(graph)
    print(f"{len(backwards)} backwards import(s):")
    for line in backwards:
        print("  " + line)
