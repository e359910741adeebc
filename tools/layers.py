"""The layering rule, checked: imports run one way, core → datasets → zoo → training → evaluation → CLIs.

`python tools/layers.py` reads every source file (tests and tools aside), finds every import of a project module
(at the top of a file, inside a function, or through import_module with a literal name) and exits 1
when a module imports a higher layer; `--list` prints every such import with its layers. A package's
`__main__.py` is a command line entry point and so belongs to the CLI layer wherever it lives.
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "datasets", "zoo", "training", "evaluation", "cli")
CLI_MODULES = {"cli", "train", "evaluate"}
SKIPPED = {"tests", "tools", ".venv", "runs", "reports"}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    imported: str
    file_layer: str
    imported_layer: str

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


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a parsed file, wherever it stands."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and "import_module" in (getattr(node.func, "attr", None),
                                                                   getattr(node.func, "id", None))
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def source_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py")
                  if not SKIPPED & set(path.relative_to(root).parts[:-1] or ("",)) and layer_of_file(path, root))


def project_imports(root: Path = ROOT) -> list[Import]:
    """Every import of a project module by a project source file, with both layers."""
    imports = []
    for path in source_files(root):
        file_layer = layer_of_file(path, root)
        for line, module in imported_modules(ast.parse(path.read_text(), str(path))):
            imported_layer = layer_of_module(module)
            if imported_layer is not None:
                imports.append(Import(str(path.relative_to(root)), line, module, file_layer, imported_layer))
    return imports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/layers.py", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every project import with its layers")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    imports = project_imports(args.root)
    upward = [item for item in imports if item.upward]
    for item in imports if args.list else upward:
        mark = "UPWARD " if item.upward else ""
        print(f"{mark}{item.file}:{item.line}: {item.file_layer} imports {item.imported} ({item.imported_layer})")
    files = len({item.file for item in imports})
    print(f"{len(imports)} project imports in {files} files, {len(upward)} upward "
          f"(order: {' → '.join(LAYERS)})")
    return 1 if upward else 0


if __name__ == "__main__":
    sys.exit(main())
