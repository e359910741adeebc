"""The layering rule, checked: imports run one way, core → datasets → zoo → training → search → evaluation → CLIs,
and no project modules import each other in a circle.

`python tools/layers.py` reads every source file (tests and tools aside), finds every import of a project module
(at the top of a file, inside a function, or through import_module with a literal name) and exits 1 when a
module imports a higher layer or when the module import graph has a circle, inside one layer too (a → b → a,
lazy imports included: they only postpone the circle). Upward imports and circles are printed; `--list` also
prints every project import with its layers. A package's `__main__.py` is a command line entry point and so
belongs to the CLI layer wherever it lives.
"""
from __future__ import annotations

import argparse
import ast
import graphlib
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "datasets", "zoo", "training", "search", "evaluation", "cli")
CLI_MODULES = {"cli", "train", "evaluate"}
SKIPPED = {"tests", "tools", ".venv", "runs", "reports"}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    imported: str
    file_layer: str
    imported_layer: str
    loads: tuple[str, ...] = ()     # the project modules it runs: `from a import b` runs a.b when that is a module

    @property
    def upward(self) -> bool:
        return LAYERS.index(self.imported_layer) > LAYERS.index(self.file_layer)


def layer_of_module(module: str) -> str | None:
    """The layer of a dotted module name, None for anything outside the project."""
    top = module.split(".")[0]
    if top in CLI_MODULES or module.endswith(".__main__"):
        return "cli"
    return top if top in LAYERS else None


def layer_of_file(path: Path, root: Path) -> str | None:
    relative = path.relative_to(root)
    if relative.name == "__main__.py" or (len(relative.parts) == 1 and relative.stem in CLI_MODULES):
        return "cli"
    return relative.parts[0] if relative.parts[0] in LAYERS else None


def module_of_file(path: Path, root: Path) -> str:
    """The dotted module name of a source file: search/index.py → search.index, zoo/__init__.py → zoo."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names imported from it) of every absolute import in a parsed file, wherever it stands."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, tuple(alias.name for alias in node.names)))
        elif (isinstance(node, ast.Call) and "import_module" in (getattr(node.func, "attr", None),
                                                                   getattr(node.func, "id", None))
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value, ()))
    return sorted(found)


def source_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py")
                  if not SKIPPED & set(path.relative_to(root).parts[:-1] or ("",)) and layer_of_file(path, root))


def loaded_modules(module: str, names: tuple[str, ...], known: set[str]) -> tuple[str, ...]:
    """The project modules an import runs: each `module.name` that is a module (`from search import index`), else
    `module` itself, or the longest part of its dotted name that is a project module."""
    submodules = tuple(f"{module}.{name}" for name in names if f"{module}.{name}" in known)
    if submodules:
        return submodules
    parts = module.split(".")
    return next(((".".join(parts[:end]),) for end in range(len(parts), 0, -1) if ".".join(parts[:end]) in known), ())


def project_imports(root: Path = ROOT) -> list[Import]:
    """Every import of a project module by a project source file, with both layers and the modules it runs."""
    files = source_files(root)
    known = {module_of_file(path, root) for path in files}
    imports = []
    for path in files:
        file_layer = layer_of_file(path, root)
        for line, module, names in imported_modules(ast.parse(path.read_text(), str(path))):
            imported_layer = layer_of_module(module)
            if imported_layer is not None:
                imports.append(Import(str(path.relative_to(root)), line, module, file_layer, imported_layer,
                                      loaded_modules(module, names, known)))
    return imports


def circles(imports: list[Import], root: Path = ROOT) -> list[list[tuple[str, Import]]]:
    """Circles in the module import graph, each as its steps (module, the import by which it runs the next),
    found one at a time by graphlib; each found circle's last step is set aside so the next search finds another,
    until none is left: every module of a circle shows up in at least one."""
    steps: dict[tuple[str, str], Import] = {}
    for item in imports:
        importer = module_of_file(root / item.file, root)
        for loaded in item.loads:
            if loaded != importer:
                steps.setdefault((importer, loaded), item)
    found = []
    while True:
        graph: dict[str, list[str]] = {}
        for importer, loaded in steps:
            graph.setdefault(importer, []).append(loaded)
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return found
        except graphlib.CycleError as error:
            modules = error.args[1][::-1]           # graphlib lists it against the direction of the imports
            found.append([(module, steps[module, following]) for module, following in zip(modules, modules[1:])])
            del steps[modules[-2], modules[-1]]


def describe(circle: list[tuple[str, Import]]) -> str:
    modules = " → ".join([module for module, _ in circle] + [circle[0][0]])
    return f"CIRCLE {modules} ({', '.join(f'{item.file}:{item.line}' for _, item in circle)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/layers.py", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="also print every project import with its layers")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    imports = project_imports(args.root)
    upward = [item for item in imports if item.upward]
    for item in imports if args.list else upward:
        mark = "UPWARD " if item.upward else ""
        print(f"{mark}{item.file}:{item.line}: {item.file_layer} imports {item.imported} ({item.imported_layer})")
    found = circles(imports, args.root)
    for circle in found:
        print(describe(circle))
    files = len({item.file for item in imports})
    print(f"{len(imports)} project imports in {files} files, {len(upward)} upward, {len(found)} circles "
          f"(order: {' → '.join(LAYERS)})")
    return 1 if upward or found else 0


if __name__ == "__main__":
    sys.exit(main())
