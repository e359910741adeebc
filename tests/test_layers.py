"""tools/layers.py, the layering check (core → datasets → zoo → training → search → evaluation → CLIs): the repository
has no upward import and no import circle, and on small trees the test writes it finds upward imports at the top of
a file, inside a function and through importlib.import_module, while a package's __main__.py (a CLI) may import
anything, and it finds circles between modules, inside one layer and through lazy imports too."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import layers  # noqa: E402


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def check(root: Path, *flags: str, capsys) -> tuple[int, list[str]]:
    status = layers.main([*flags, "--root", str(root)])
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_the_repository_has_no_upward_import(capsys):
    status, lines = check(ROOT, capsys=capsys)
    assert status == 0
    assert not any(line.startswith("UPWARD") for line in lines)
    assert not any(line.startswith("CIRCLE") for line in lines)
    assert lines[-1].endswith(", 0 upward, 0 circles (order: core → datasets → zoo → training → search → evaluation → "
                              "cli)")


def test_the_command_line_exits_0_on_the_repository():
    result = subprocess.run([sys.executable, "tools/layers.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith(" 0 upward, 0 circles (order: core → datasets → zoo → training → "
                                                   "search → evaluation → cli)")


def test_core_imports_nothing_of_the_project():
    imports = layers.project_imports(ROOT)
    assert {item.file_layer for item in imports} >= {"core", "datasets", "zoo", "training", "search", "evaluation",
                                                     "cli"}
    from_core = [(item.file, item.imported) for item in imports
                 if item.file_layer == "core" and item.imported_layer != "core"]
    assert from_core == []


UPWARD_AT_THE_TOP = {
    "core/__init__.py": "",
    "core/shapes.py": """\
        import numpy as np

        from zoo.registry import create
        """,
    "zoo/__init__.py": "",
    "zoo/registry.py": "def create(): pass\n",
}


def test_an_upward_import_at_the_top_is_reported_with_file_and_line(tmp_path, capsys):
    status, lines = check(write_tree(tmp_path, UPWARD_AT_THE_TOP), capsys=capsys)
    assert status == 1
    assert lines == ["UPWARD core/shapes.py:3: core imports zoo.registry (zoo)",
                     "1 project imports in 1 files, 1 upward, 0 circles (order: core → datasets → zoo → training → "
                     "search → evaluation → cli)"]


def test_the_command_line_exits_1_on_an_upward_import(tmp_path):
    write_tree(tmp_path, UPWARD_AT_THE_TOP)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "layers.py"), "--root", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "UPWARD core/shapes.py:3: core imports zoo.registry (zoo)"


def test_an_upward_import_inside_a_function_is_reported(tmp_path, capsys):
    write_tree(tmp_path, {
        "datasets/__init__.py": "",
        "datasets/loader.py": """\
            import os


            def load():
                from training.run import train
                import evaluation.score
                return train
            """,
    })
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 1
    assert [line for line in lines if line.startswith("UPWARD")] == [
        "UPWARD datasets/loader.py:5: datasets imports training.run (training)",
        "UPWARD datasets/loader.py:6: datasets imports evaluation.score (evaluation)",
    ]


def test_an_upward_import_through_importlib_is_reported(tmp_path, capsys):
    write_tree(tmp_path, {
        "datasets/__init__.py": """\
            import importlib


            def model_module(name):
                importlib.import_module(name)          # not a literal: cannot be checked
                return importlib.import_module("zoo.x")
            """,
    })
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 1
    assert [line for line in lines if line.startswith("UPWARD")] == [
        "UPWARD datasets/__init__.py:6: datasets imports zoo.x (zoo)"]


def test_a_package_main_is_a_command_line_and_may_import_any_layer(tmp_path, capsys):
    write_tree(tmp_path, {
        "datasets/__init__.py": "",
        "datasets/fields/__init__.py": "from datasets import source\n",
        "datasets/fields/__main__.py": """\
            import cli
            from evaluation.preview import save_preview
            from training import train
            """,
    })
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 0 and not any(line.startswith("UPWARD") for line in lines)
    assert lines[-1].startswith("4 project imports in 2 files, 0 upward, 0 circles")


def test_importing_a_packages_main_is_importing_a_command_line(tmp_path, capsys):
    write_tree(tmp_path, {"evaluation/__init__.py": "from datasets.fields.__main__ import main\n"})
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 1
    assert lines[0] == "UPWARD evaluation/__init__.py:1: evaluation imports datasets.fields.__main__ (cli)"


def test_cli_modules_tests_and_tools_are_not_checked_but_cli_modules_are_a_layer(tmp_path, capsys):
    write_tree(tmp_path, {
        "train.py": "from evaluation import score\nimport zoo\n",
        "tests/test_x.py": "import train\n",
        "tools/helper.py": "import train\n",
        "scripts/other.py": "import train\n",
        "zoo/__init__.py": "import cli\n",
    })
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 1
    assert [line for line in lines if line.startswith("UPWARD")] == ["UPWARD zoo/__init__.py:1: zoo imports cli (cli)"]
    assert lines[-1].startswith("3 project imports in 2 files, 1 upward, 0 circles")


def test_list_prints_every_project_import_with_both_layers(tmp_path, capsys):
    write_tree(tmp_path, {
        **UPWARD_AT_THE_TOP,
        "zoo/models.py": "import json\nimport numpy\nfrom core import shapes\nfrom zoo.registry import create\n",
        "evaluate.py": "import zoo.models\n",
    })
    status, lines = check(tmp_path, "--list", capsys=capsys)
    assert status == 1
    assert lines == [                                   # files in sorted order
        "UPWARD core/shapes.py:3: core imports zoo.registry (zoo)",
        "evaluate.py:1: cli imports zoo.models (zoo)",
        "zoo/models.py:3: zoo imports core (core)",
        "zoo/models.py:4: zoo imports zoo.registry (zoo)",
        "4 project imports in 3 files, 1 upward, 0 circles (order: core → datasets → zoo → training → search → "
        "evaluation → cli)",
    ]


def test_project_imports_gives_file_line_module_and_both_layers(tmp_path):
    write_tree(tmp_path, {"training/run.py": "\n\nfrom datasets.pipeline import make_dataset\n"})
    (found,) = layers.project_imports(tmp_path)
    assert (found.file, found.line, found.imported, found.file_layer, found.imported_layer) == (
        "training/run.py", 3, "datasets.pipeline", "training", "datasets")
    assert not found.upward


@pytest.mark.parametrize("module, layer", [("core.stars", "core"), ("zoo", "zoo"), ("evaluate", "cli"),
                                           ("search.index", "search"),
                                           ("datasets.star_fields.__main__", "cli"), ("numpy", None),
                                           ("zoology", None)])
def test_layer_of_module(module, layer):
    assert layers.layer_of_module(module) == layer


A_LAZY_CIRCLE = {
    "search/__init__.py": "",
    "search/gallery.py": """\
        import numpy as np


        def open_gallery(path):
            from search.index import load_index   # inside a function: the circle is only postponed
            return load_index(path)
        """,
    "search/index.py": "from search.shards import read\n",
    "search/shards.py": "from search import gallery\n",
}


def test_a_circle_inside_one_layer_through_a_lazy_import_fails_with_its_modules_and_lines(tmp_path, capsys):
    status, lines = check(write_tree(tmp_path, A_LAZY_CIRCLE), capsys=capsys)
    assert status == 1
    assert lines == [
        "CIRCLE search.gallery → search.index → search.shards → search.gallery "
        "(search/gallery.py:5, search/index.py:1, search/shards.py:1)",
        "3 project imports in 3 files, 0 upward, 1 circles (order: core → datasets → zoo → training → search → "
        "evaluation → cli)"]


def test_the_command_line_exits_1_on_a_circle_and_list_prints_it_after_the_imports(tmp_path):
    write_tree(tmp_path, A_LAZY_CIRCLE)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "layers.py"), "--root", str(tmp_path), "--list"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:4] == [
        "search/gallery.py:5: search imports search.index (search)",
        "search/index.py:1: search imports search.shards (search)",
        "search/shards.py:1: search imports search (search)",
        "CIRCLE search.gallery → search.index → search.shards → search.gallery "
        "(search/gallery.py:5, search/index.py:1, search/shards.py:1)"]


def test_every_circle_is_reported_and_a_one_way_chain_is_none(tmp_path, capsys):
    write_tree(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": "from core import b\n",
        "core/b.py": "import core.a\nimport importlib\nimportlib.import_module('core.c')\n",
        "core/c.py": "from core.b import x\n",
        "core/d.py": "from core import a, c\n",       # imports into the circles, but no module imports it back
        "zoo/__init__.py": "from zoo import registry\n",
        "zoo/registry.py": "from core.d import y\n",
    })
    status, lines = check(tmp_path, capsys=capsys)
    assert status == 1
    assert lines == [
        "CIRCLE core.a → core.b → core.a (core/a.py:1, core/b.py:1)",
        "CIRCLE core.b → core.c → core.b (core/b.py:3, core/c.py:1)",
        "7 project imports in 6 files, 0 upward, 2 circles (order: core → datasets → zoo → training → search → "
        "evaluation → cli)"]
    assert layers.circles(layers.project_imports(tmp_path), tmp_path)[0][0][0] == "core.a"


def test_from_a_package_import_a_module_is_an_import_of_that_module(tmp_path):
    write_tree(tmp_path, {"search/__init__.py": "", "search/index.py": "",
                          "evaluation/score.py": "from search import index, missing\nfrom search.index import f\n"})
    assert [item.loads for item in layers.project_imports(tmp_path)] == [("search.index",), ("search.index",)]
