"""Shipped presets (`preset:NAME`, core/runs.py): a tiny real classifier run in a presets folder of the test's own
(ASTROZOO_PRESETS_DIR) loads like its folder, evaluate.py reads it and writes outside presets/, train.py lists it and
refuses to resume it, and an unknown name stops with one line listing the shipped ones."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

import evaluate
import train
import zoo
from core.errors import ModelError
from core.runs import RunFolder, load_config, resolve_run

pytestmark = pytest.mark.slow       # every test reads the presets folder of a trained run

TINY = ["--model", "classifier", "--limit", "40", "--epochs", "1", "--image-size", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A presets folder as it would ship: galaxy-classifier (a one-epoch train.py run) and a copy of it under
    another name, so that listings show more than one."""
    root = tmp_path_factory.mktemp("presets")
    train.main([*TINY, "--out", str(root / "galaxy-classifier")])
    shutil.copytree(root / "galaxy-classifier", root / "old-classifier")
    return root


@pytest.fixture(autouse=True)
def presets(shipped, monkeypatch, tmp_path):
    """The test's presets folder in place of the repository's, and an empty working folder for default outputs."""
    monkeypatch.setenv("ASTROZOO_PRESETS_DIR", str(shipped))
    monkeypatch.chdir(tmp_path)
    return shipped


def snapshot(folder: Path) -> dict:
    """Every file below `folder` with its size and modification time: equal snapshots mean nothing was written."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))}


def test_a_preset_loads_the_same_model_as_its_folder(presets):
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    by_name, by_folder = zoo.load("preset:galaxy-classifier"), zoo.load(presets / "galaxy-classifier")
    assert by_name.zoo_name == by_folder.zoo_name == "classifier"
    np.testing.assert_array_equal(np.asarray(by_name.classify(images)), np.asarray(by_folder.classify(images)))
    assert resolve_run("preset:galaxy-classifier") == presets / "galaxy-classifier"
    assert load_config("preset:galaxy-classifier").image_size == 16


def test_a_preset_writes_default_outputs_under_runs_not_inside_itself(presets, tmp_path):
    shipped = RunFolder("preset:galaxy-classifier")
    assert shipped.preset == "galaxy-classifier" and shipped.root == presets / "galaxy-classifier"
    assert shipped.results("neighbours") == Path("runs/preset-galaxy-classifier/neighbours")
    assert RunFolder(presets / "old-classifier").results("generated") == Path("runs/preset-old-classifier/generated")
    assert RunFolder(tmp_path / "mine").results("neighbours") == tmp_path / "mine" / "neighbours"
    assert RunFolder("runs/mine").preset is None


def test_neighbours_on_a_preset(presets, tmp_path, capsys):
    before = snapshot(presets)
    evaluate.main(["neighbours", "--run", "preset:galaxy-classifier", "--k", "3"])
    out = Path("runs/preset-galaxy-classifier/neighbours")
    printed = capsys.readouterr().out
    assert "searched 40 images in" in printed and f"wrote {out}/neighbours.csv, {out}/neighbours.png" in printed
    with open(tmp_path / out / "neighbours.csv") as handle:
        assert [row["rank"] for row in csv.DictReader(handle)] == ["1", "2", "3"]
    assert (tmp_path / out / "neighbours.png").read_bytes()[:4] == b"\x89PNG"
    assert snapshot(presets) == before


def test_train_list_shows_the_presets(capsys):
    train.main(["--list"])
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("preset (--run preset:NAME)")))
    assert [line.split() for line in lines[header + 1:]] == [
        ["galaxy-classifier", "classifier", "synthetic-galaxies", "classify"],
        ["old-classifier", "classifier", "synthetic-galaxies", "classify"]]


@pytest.mark.parametrize("run, what", [("preset:nope", "unknown preset 'nope'"),
                                       ("preset:", "'preset:' names no preset")])
def test_an_unknown_preset_is_one_line_listing_the_shipped_ones(run, what, one_line_error, tmp_path):
    err = one_line_error(evaluate.main, ["neighbours", "--run", run, "--k", "3"])
    assert err == f"error: {what}. Choose one of: galaxy-classifier, old-classifier\n"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match=f"^{what}. Choose one of: galaxy-classifier, old-classifier$"):
        zoo.load(run)


def test_without_shipped_presets_the_error_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("ASTROZOO_PRESETS_DIR", str(tmp_path / "none"))
    with pytest.raises(ModelError, match=f"^unknown preset 'galaxy-encoder'. No presets are shipped in "
                                         f"{tmp_path / 'none'}; pass a run folder written by train.py$"):
        zoo.load("preset:galaxy-encoder")


@pytest.mark.parametrize("run", ["preset:galaxy-classifier", "{presets}/galaxy-classifier"])
def test_resuming_a_preset_is_refused(run, presets, one_line_error, tmp_path):
    before = snapshot(presets)
    err = one_line_error(train.main, ["--resume", run.format(presets=presets)])
    assert err == (f"error: preset 'galaxy-classifier' ships with astrozoo and is read-only, so train.py does not "
                   f"write into it. Train your own run with 'python train.py --model classifier', or copy "
                   f"{presets / 'galaxy-classifier'} to a folder of your own and --resume that\n")
    assert snapshot(presets) == before and list(tmp_path.iterdir()) == []
