"""evaluate.py reconstruct on tiny runs: the numbers in reconstruct.json against the same numbers computed here,
a perfect reconstruction scoring perfectly, and one-line errors with exit status 2 that leave nothing behind."""
import json
from pathlib import Path

import numpy as np
import pytest

import cli
import evaluate
import zoo
from core.runs import TrainConfig
from datasets.pipeline import make_dataset, to_numpy
from search.embedding import gallery_spec
from search.queries import load_query
from evaluation.reconstruct import Judge, evaluate_reconstruction, ssim
from training import train
from zoo.vae import VAE


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
    assert result["judge"] is None and 0 < result["mse"]["mean"] < 1
    assert json.loads((tmp_path / "reconstruct.json").read_text())["judge"] is None


BAD_INPUT = [
    (["reconstruct", "--run", "{classifier}"],
     "error: run '{classifier}' is a classifier, which cannot reconstruct images. Pass a run of autoencoder/vae"),
    (["reconstruct", "--run", "{vae}", "--judge", "not-a-run"], "error: 'not-a-run' is not a finished run folder"),
    (["reconstruct", "--run", "{vae}", "--judge", "{vae}"],
     "error: --judge run '{vae}' is a vae, which does not classify images. Pass a run of classifier"),
    (["reconstruct", "--run", "{vae}", "--out", "a-file/out"],
     "error: cannot write to a-file/out (a-file is a file, not a folder). Choose a --out you can write to"),
    (["reconstruct", "--judge", "{classifier}"], "error: the following arguments are required: --run"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("in the way")
    before = {path: sorted(p.name for p in Path(path).iterdir()) for path in [tmp_path, *runs.values()]}
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: evaluate.main([item.format(**runs) for item in argv]))
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message.format(**runs) in err
    assert {path: sorted(p.name for p in Path(path).iterdir()) for path in before} == before
