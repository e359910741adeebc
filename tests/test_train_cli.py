"""train.py end to end on tiny settings: the run folder's files, resume, and one-line errors for bad input (in this
process, and once from the shell)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cli
import train
import zoo

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--limit", "40", "--image-size", "16", "--batch-size", "8"]


def run_train(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def read_history(run_dir):
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_classifier_run_folder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.main(["--model", "classifier", *TINY, "--epochs", "2", "--out", str(run_dir)])
    printed = capsys.readouterr().out
    assert f"done: {run_dir}" in printed and "val_accuracy=" in printed

    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "classifier" and config["epochs"] == 2 and config["image_size"] == 16
    assert config["model_options"]["num_classes"] == 5 and config["model_options"]["image_size"] == 16
    assert config["class_names"][2] == "Barred Spiral" and config["capabilities"] == ["classify"]
    assert config["versions"]["keras"].startswith("3.") and config["n_images"] == 40

    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history[0])
    assert all(float(row["seconds"]) > 0 for row in history)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["confusion_epoch_001.png",
                                                                         "confusion_epoch_002.png"]
    assert (run_dir / "samples" / "confusion_epoch_002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert (run_dir / "checkpoint").is_dir()

    model = zoo.load(run_dir)
    probabilities = model.classify(np.zeros((3, 16, 16, 3), np.float32))
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.slow
def test_vae_run_writes_reconstructions_generations_and_both_losses(tmp_path):
    run_dir = tmp_path / "vae"
    train.main(["--model", "vae", *TINY, "--epochs", "1", "--out", str(run_dir)])
    history = read_history(run_dir)
    assert {"reconstruction_loss", "kl_loss", "val_reconstruction_loss", "val_kl_loss"} <= set(history[0])
    names = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert names == ["generated_epoch_001.png", "reconstructions_epoch_001.png"]
    generated = zoo.load(run_dir).generate(4, seed=0)
    assert generated.shape == (4, 16, 16, 3)


@pytest.mark.slow
def test_resume_continues_from_the_last_finished_epoch(tmp_path):
    run_dir = tmp_path / "ae"
    train.main(["--model", "autoencoder", *TINY, "--epochs", "1", "--out", str(run_dir)])
    after_one = zoo.load(run_dir)
    steps_per_epoch = int(after_one.optimizer.iterations.numpy())
    train.main(["--resume", str(run_dir), "--epochs", "3"])
    assert [row["epoch"] for row in read_history(run_dir)] == ["0", "1", "2"]
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 3
    assert int(zoo.load(run_dir).optimizer.iterations.numpy()) == 3 * steps_per_epoch


def test_list_shows_models_with_parameter_counts_and_datasets(capsys):
    train.main(["--list"])
    out = capsys.readouterr().out
    assert "155,013" in out and "132,611" in out and "encode, decode, reconstruct, generate" in out
    assert "synthetic-galaxies" in out and "galaxy10" in out and "hubble" in out and "folder" in out


BAD_INPUT = [
    (["--model", "nope"], "error: unknown model 'nope'. Choose one of: autoencoder, classifier"),
    (["--model", "vae", "--dataset", "sdss"], "error: unknown dataset 'sdss'. Choose one of"),
    (["--model", "vae", "--dataset", "galaxy10"], "error: dataset 'galaxy10' needs --data-dir"),
    (["--model", "vae", "--dataset", "galaxy10", "--data-dir", "missing.h5"], "missing.h5"),
    (["--model", "vae", "--image-size", "24"], "error: vae needs an image size that is a multiple of 16, got 24"),
    (["--model", "simclr", "--option", "feature_dim=12"], "error: simclr's feature_dim must be a multiple of 8"),
    (["--model", "simclr", "--option", "noise=-0.1"], "error: option noise=-0.1 of model 'simclr' must be a number "
                                                      "at least 0. Use e.g. --option noise=0.03"),
    (["--model", "stylegan", "--image-size", "30"], "a power of two from 8, got 30. Use --image-size 32"),
    (["--model", "vae", "--images-per-stage", "100"], "error: model 'vae' has no option images_per_stage"),
    (["--model", "vae", "--image-size", "-8"], "error: argument --image-size: expected a positive whole number"),
    (["--model", "vae", "--epochs", "0"], "error: argument --epochs: expected a positive whole number, got '0'"),
    (["--model", "vae", "--learning-rate", "abc"], "error: argument --learning-rate: expected a positive number"),
    (["--model", "vae", "--option", "depth=3"], "error: model 'vae' has no option depth"),
    (["--model", "classifier", "--dataset", "hubble"], "needs labels but dataset 'hubble' is unlabeled"),
    (["--resume", "not-a-run"], "error: 'not-a-run' is not a run folder (no readable config.json)"),
    ([], "error: no --model given"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: train.main(argv))
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bad_input_exit_status_from_the_shell(tmp_path):
    result = run_train("--model", "vae", "--image-size", "30", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: vae needs an image size that is a multiple of 16, got 30. "
                                     "Use --image-size 16")
    assert list(tmp_path.iterdir()) == []
