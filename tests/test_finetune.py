"""Fine-tuning (zoo/finetune.py, training/finetune.py): a classifier head on a tiny SimCLR run's encoder, frozen
then trained, on K labeled images per class; the run loads, classifies and resumes; every bad input is one line."""
import json
import shutil

import numpy as np
import pytest

import datasets
import train as train_cli
import zoo
from core.runs import TrainConfig, load_config
from datasets.pipeline import few_labels, split_indices
from training import train
from zoo.finetune import pretrained_encoder

TINY = dict(dataset="synthetic-galaxies", image_size=16, limit=200, batch_size=16)


def fine_tune(from_run, run_dir, **flags):
    config = TrainConfig(model="classifier", from_run=str(from_run), steps_per_epoch=2, labels_per_class=5,
                         **{**TINY, **flags})
    return train(config, run_dir, verbose=0)[1]


def resume(run_dir, epochs: int):
    config = load_config(run_dir)
    config.epochs = epochs
    return train(config, run_dir, resume=True, verbose=0)[1]


def same(first: list, second: list) -> bool:
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


@pytest.mark.slow
def test_encoder_is_frozen_then_trained_and_a_run_stopped_in_phase_two_resumes_there(simclr_run, tmp_path):
    pretrained = pretrained_encoder(simclr_run).get_weights()
    run = tmp_path / "tuned"
    fine_tune(simclr_run, run, epochs=1, freeze_epochs=1)
    frozen = zoo.load(run)
    assert same(frozen.encoder.get_weights(), pretrained)          # kernels and BatchNorm statistics alike

    resume(run, 2)                                                 # phase 2, one epoch: then "stopped"
    once = zoo.load(run).encoder.get_weights()
    assert not same(once, pretrained)
    resume(run, 3)                                                 # picks up in phase 2
    twice = zoo.load(run).encoder.get_weights()
    assert not same(twice, once)
    saved = json.loads((run / "config.json").read_text())
    assert saved["schedule"] == [{"epochs": [0, 1], "encoder": "frozen", "learning_rate": 1e-3},
                                 {"epochs": [1, 3], "encoder": "trained", "learning_rate": pytest.approx(1e-4)}]
    assert (saved["from_run"], saved["freeze_epochs"], saved["labels_per_class"]) == (str(simclr_run), 1, 5)
    assert [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]


def test_k_labels_per_class_are_drawn_seeded_from_the_training_split_only():
    source = datasets.load("synthetic-galaxies", image_size=16, limit=200)
    rows = few_labels(source, 3, 0.1, seed=0)
    assert np.bincount(source.labels()[rows], minlength=5).tolist() == [3, 3, 3, 3, 3]
    assert set(rows) <= set(split_indices(200, "train", 0.1, seed=0))
    assert np.array_equal(rows, few_labels(source, 3, 0.1, seed=0))
    assert not np.array_equal(rows, few_labels(source, 3, 0.1, seed=1))


@pytest.mark.slow
def test_a_classifier_from_scratch_trains_on_k_labels_per_class(tmp_path):
    train(TrainConfig(model="classifier", epochs=1, labels_per_class=3, **TINY), tmp_path / "run", verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["labels_per_class"] == 3 and saved["from_run"] is None
    assert saved["model_options"]["steps_per_epoch"] == 1          # one pass over 15 images in batches of 16


@pytest.mark.slow
def test_the_run_loads_without_its_source_and_classifies(simclr_run, tmp_path):
    source_copy = tmp_path / "source"
    shutil.copytree(simclr_run, source_copy)
    fine_tune(source_copy, tmp_path / "tuned", epochs=2, freeze_epochs=1)
    shutil.rmtree(source_copy)
    model = zoo.load(tmp_path / "tuned")
    images = np.random.default_rng(0).random((6, 16, 16, 3), dtype=np.float32)
    probabilities = model.classify(images)
    assert probabilities.shape == (6, 5) and model.zoo_name == "classifier"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_a_vae_encoder_gives_its_mean(tmp_path):
    run = tmp_path / "vae"
    train(TrainConfig(model="vae", epochs=1, steps_per_epoch=1, options={"latent_dim": 8, "filters": 4}, **TINY),
          run, verbose=0)
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(pretrained_encoder(run).predict(images, verbose=0), zoo.load(run).encode(images),
                               atol=1e-5)


def edited_copy(run, folder, **changes):
    """A copy of run's config.json with top-level or model_options changes: what a different run would say."""
    folder.mkdir()
    saved = json.loads((run / "config.json").read_text())
    saved.update(changes.pop("top", {}))
    saved["model_options"].update(changes)
    (folder / "config.json").write_text(json.dumps(saved))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--model", "vae"], "--from fine-tunes a classifier, but --model is 'vae'. Use --model classifier with --from"),
    (["--model", "classifier", "--image-size", "32"],
     "--image-size 32 differs from the 16 px the encoder of {run} was trained on. Use --image-size 16"),
    (["--model", "classifier", "--freeze-epochs", "-1"], "--freeze-epochs must be 0 or more, got -1"),
    (["--model", "classifier", "--labels-per-class", "1000"],
     "--labels-per-class 1000 is more than the {smallest} training images of class '{name}'. "
     "Use --labels-per-class {smallest} or fewer"),
])
def test_bad_fine_tuning_flags_are_one_line(simclr_run, tmp_path, one_line_error, flags, message):
    out = tmp_path / "out"
    err = one_line_error(train_cli.main, [*flags, "--from", str(simclr_run), "--limit", "200", "--out", str(out)])
    source = datasets.load("synthetic-galaxies", image_size=16, limit=200)
    counts = np.bincount(source.labels()[split_indices(200, "train", 0.1, seed=0)])
    smallest, name = counts.min(), source.class_names[counts.argmin()]
    assert message.format(run=simclr_run, smallest=smallest, name=name) in err
    assert not out.exists()


@pytest.mark.slow
def test_a_run_that_cannot_encode_is_refused(simclr_run, tmp_path, one_line_error):
    classifier = edited_copy(simclr_run, tmp_path / "classifier", top={"model": "classifier"})
    err = one_line_error(train_cli.main, ["--model", "classifier", "--from", str(classifier), "--limit", "20"])
    assert err == (f"error: --from {classifier} is a 'classifier' run, which cannot encode images. "
                   "Fine-tune from a run or preset of simclr, vae or autoencoder\n")


@pytest.mark.slow
def test_data_of_other_channels_than_the_encoder_is_refused(simclr_run, tmp_path, one_line_error):
    grey = edited_copy(simclr_run, tmp_path / "grey", channels=1)
    err = one_line_error(train_cli.main, ["--model", "classifier", "--from", str(grey), "--limit", "20"])
    assert err == (f"error: dataset 'synthetic-galaxies' has 3 channel(s) but the encoder of {grey} was trained on "
                   "1. Use data with 1 channel(s)\n")


def test_labels_per_class_needs_labels(tmp_path, one_line_error):
    err = one_line_error(train_cli.main, ["--model", "classifier", "--dataset", "hubble", "--labels-per-class", "2",
                                          "--image-size", "16", "--out", str(tmp_path / "out")])
    assert "--labels-per-class needs class labels, but dataset 'hubble' is unlabeled" in err
    assert not (tmp_path / "out").exists()


def test_freeze_epochs_needs_from(tmp_path, one_line_error):
    err = one_line_error(train_cli.main, ["--model", "classifier", "--freeze-epochs", "2", "--out", str(tmp_path / "o")])
    assert err == ("error: --freeze-epochs 2 applies only when fine-tuning. Add --from RUN_OR_PRESET or drop "
                   "--freeze-epochs\n")
