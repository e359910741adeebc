"""evaluate.py reconstruct on tiny runs: the numbers in reconstruct.json against the same numbers computed here,
and a perfect reconstruction scoring perfectly (its one-line errors: tests/test_evaluate_cli.py)."""
import json

import numpy as np
import pytest

import evaluate
import zoo
from core.runs import TrainConfig
from datasets.pipeline import make_dataset, to_numpy
from search.embedding import gallery_spec
from search.queries import load_query
from evaluation.reconstruct import Judge, evaluate_reconstruction, ssim
from training import train
from zoo.vae import VAE

pytestmark = pytest.mark.slow       # every test reads the tiny trained runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-epoch runs at 16 px on 60 synthetic galaxies (6 held out): a VAE and a classifier as the judge."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("vae", "classifier"):
        train(TrainConfig(model=name, limit=60, image_size=16, epochs=1, batch_size=8), run_dir=root / name,
              verbose=0)
    return {name: str(root / name) for name in ("vae", "classifier")}


def held_out(run_dir):
    """The run's validation images and labels, read independently of evaluation.reconstruct."""
    spec = gallery_spec(run_dir)
    return to_numpy(make_dataset(spec.open(), image_size=16, split="validation", batch_size=64, cache=False))


def test_reconstruct_writes_the_numbers_it_prints(runs, tmp_path, capsys):
    evaluate.main(["reconstruct", "--run", runs["vae"], "--judge", runs["classifier"], "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "reconstruct.json").read_text())
    assert (tmp_path / "reconstruct.png").read_bytes()[:4] == b"\x89PNG"

    images, labels = held_out(runs["vae"])
    model, judge = zoo.load(runs["vae"]), Judge(runs["classifier"], 3)
    reconstructions = model.reconstruct(images)
    errors = np.mean((reconstructions - images) ** 2, axis=(1, 2, 3))
    kept = judge(images) == judge(reconstructions)
    assert result["n"] == len(images) == 6
    assert result["mse"]["mean"] == pytest.approx(errors.mean(), rel=1e-5)
    assert result["ssim"]["mean"] == pytest.approx(ssim(images, reconstructions).mean(), rel=1e-5)
    assert result["judge"]["class_kept"] == pytest.approx(kept.mean())
    assert result["judge"]["accuracy_on_originals"] == pytest.approx(np.mean(judge(images) == labels))
    for c, name in enumerate(result["class_names"]):
        if np.any(labels == c):
            assert result["judge"]["class_kept_per_class"][name] == pytest.approx(kept[labels == c].mean())
    milky_way = load_query("milky-way", gallery_spec(runs["vae"]))
    assert result["milky_way"]["mse"] == pytest.approx(np.mean((model.reconstruct(milky_way) - milky_way) ** 2),
                                                       rel=1e-5)
    generated = result["judge"]["generated"]
    assert generated["n"] == 6 and sum(generated["judge_class_shares"].values()) == pytest.approx(1.0)
    assert printed.splitlines()[1].split() == ["all", f"{result['mse']['mean']:.5f}", f"{result['ssim']['mean']:.3f}",
                                               f"{result['judge']['class_kept']:.2f}"]
    assert "6 held-out images; wrote" in printed


def test_a_perfect_reconstruction_keeps_every_class(runs, monkeypatch):
    monkeypatch.setattr(VAE, "reconstruct", lambda self, images, batch_size=256: images)
    result = evaluate_reconstruction(runs["vae"], runs["classifier"])
    assert result["mse"]["mean"] == 0 and result["ssim"]["mean"] == pytest.approx(1.0)
    assert result["judge"]["class_kept"] == 1.0
    assert set(result["judge"]["class_kept_per_class"].values()) == {1.0}
    assert result["judge"]["accuracy_on_reconstructions"] == result["judge"]["accuracy_on_originals"]
    assert result["milky_way"]["mse"] == 0 and not result["milky_way"]["mse_below_validation_mean"]
    assert result["milky_way"]["judge_class"] == result["milky_way"]["reconstruction_judge_class"]


def test_without_a_judge_there_are_pixel_errors_only(runs, tmp_path):
    result = evaluate_reconstruction(runs["vae"], out_dir=tmp_path)
    images, _ = held_out(runs["vae"])
    assert result["judge"] is None
    assert result["mse"]["mean"] == pytest.approx(np.mean((zoo.load(runs["vae"]).reconstruct(images) - images) ** 2),
                                                  rel=1e-5)
    assert json.loads((tmp_path / "reconstruct.json").read_text())["judge"] is None
