"""evaluate.py label-efficiency (evaluation/label_efficiency.py) on a tiny SimCLR run: the JSON and the plot, and
values that direct calls of train.py's training and the linear probe reproduce."""
import json

import numpy as np
import pytest

import datasets
import evaluate
from core.runs import TrainConfig
from datasets.pipeline import few_labels, split_indices
from evaluation.label_efficiency import METHODS, parse_labels
from evaluation.retrieval import linear_probe_accuracy
from training import train
from zoo.finetune import pretrained_encoder

TINY = dict(dataset="synthetic-galaxies", image_size=16, limit=200, batch_size=32)


def test_parse_labels():
    assert parse_labels("5, 10,all") == (5, 10, "all")


@pytest.mark.slow
def test_the_curve_is_written_and_matches_direct_calls(simclr_run, tmp_path, capsys):
    """Eight tiny classifiers (scratch and fine-tune, 3 labels per class and all, two seeds) of one epoch each, the
    encoder frozen all along: the second phase of fine-tuning is tests/test_finetune.py's."""
    out = tmp_path / "curve"
    evaluate.main(["label-efficiency", "--from", str(simclr_run), "--labels", "3,all", "--repeats", "2", "--limit",
                   "200", "--epochs", "1", "--steps-per-epoch", "2", "--freeze-epochs", "1", "--out", str(out)])
    results = json.loads((out / "label-efficiency.json").read_text())
    assert (out / "label-efficiency.png").read_bytes()[:4] == b"\x89PNG"
    assert results["labels"] == ["3", "all"] and results["repeats"] == 2 and results["n_validation"] == 20
    assert results["budget"] == {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "freeze_epochs": 1}
    for method in METHODS:
        for k in ("3", "all"):
            cell = results["accuracy"][method][k]
            right = [20 * v for v in cell["values"]]          # accuracies on the 20 held-out galaxies: k / 20
            assert len(right) == 2 and right == pytest.approx([round(r) for r in right], abs=1e-4), right
            assert cell["mean"] == pytest.approx(np.mean(cell["values"]))
            assert cell["std"] == pytest.approx(np.std(cell["values"]))
    table = capsys.readouterr().out
    assert f"{results['accuracy']['fine-tune']['3']['mean']:.3f} ± " in table

    source = datasets.load("synthetic-galaxies", image_size=16, limit=200)
    rows, held_out = few_labels(source, 3, 0.1, seed=1), split_indices(200, "validation", 0.1, seed=1)
    images, labels = source.read(0, 200)
    features = pretrained_encoder(simclr_run).predict(np.asarray(images, np.float32) / 255, verbose=0)
    probe = linear_probe_accuracy(features[rows], labels[rows], features[held_out], labels[held_out])
    assert results["accuracy"]["probe"]["3"]["values"][1] == pytest.approx(probe)
    tuned = train(TrainConfig(model="classifier", from_run=str(simclr_run), freeze_epochs=1, epochs=1,
                              steps_per_epoch=2, labels_per_class=3, seed=1, **TINY), tmp_path / "tuned", verbose=0)[1]
    assert results["accuracy"]["fine-tune"]["3"]["values"][1] == pytest.approx(tuned["val_accuracy"], abs=0.051)


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--labels", "0,5"], "error: --labels must be positive whole numbers or 'all', comma-separated, got '0,5'. "
                          "Use e.g. --labels 5,10,25,100,all\n"),
    (["--labels", "500"], "error: --labels-per-class 500 is more than the"),
    (["--freeze-epochs", "-2"], "error: --freeze-epochs must be 0 or more, got -2"),
])
def test_bad_flags_are_one_line(simclr_run, tmp_path, one_line_error, flags, message):
    err = one_line_error(evaluate.main, ["label-efficiency", "--from", str(simclr_run), "--limit", "200",
                                         "--out", str(tmp_path / "out"), *flags])
    assert err.startswith(message)
    assert not (tmp_path / "out").exists()
