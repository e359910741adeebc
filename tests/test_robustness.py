"""evaluate.py robustness: the held-out conditions render the run's own validation galaxies, scores are what the
model gives on them, and the Hubble domain gap compares nearest-neighbour distances."""
import json

import numpy as np
import pytest
from conftest import train_tiny_classifier

import datasets
import evaluate
import zoo
from core.errors import DataError
from datasets.pipeline import split_indices
from datasets.synthetic_galaxies.observe import HELD_OUT_CONDITIONS
from evaluation.robustness import (
    format_results,
    leave_one_out_precision,
    measure_robustness,
    nearest_distances,
    render_validation,
    validation_rows,
)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    return train_tiny_classifier(tmp_path_factory.mktemp("runs") / "classifier", limit=100, seed=3)


def test_leave_one_out_precision_skips_the_query_itself():
    vectors = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 0])
    # k=2: the three 0s find each other; 5.0 and 5.1 find each other and a 0; 9.0 finds the two 1s
    expected = np.mean([1, 1, 1, 0.5, 0.5, 0])
    assert leave_one_out_precision(vectors, labels, 2) == pytest.approx(expected)
    with pytest.raises(DataError, match="precision@6 needs more than 6 galaxies, got 6"):
        leave_one_out_precision(vectors, labels, 6)


def test_nearest_distances_against_another_set_and_against_itself():
    gallery = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]], np.float32)
    np.testing.assert_allclose(nearest_distances(gallery, np.array([[0.0, 1.0]], np.float32), skip_self=False), [1.0])
    np.testing.assert_allclose(nearest_distances(gallery, gallery, skip_self=True), [3.0, 4.0, 3.0])


@pytest.mark.slow
def test_validation_galaxies_are_the_runs_own_under_each_condition(classifier_run):
    rows, labels, seed = validation_rows(classifier_run, 50)
    assert seed == 3 and np.array_equal(rows, split_indices(100, "validation", 0.1, 3))   # the run's 10 held out
    source = datasets.load("synthetic-galaxies", image_size=16, seed=3, limit=100)
    np.testing.assert_array_equal(labels, source.labels()[rows])
    clean = render_validation(3, rows, labels, 16, "clean")
    expected = source.read(int(rows[0]), int(rows[0]) + 1)[0][0]
    np.testing.assert_allclose(clean[0], expected / 255.0)
    blurred = render_validation(3, rows, labels, 16, "seeing")
    assert blurred.shape == clean.shape and not np.allclose(blurred, clean)


@pytest.mark.slow
def test_report_scores_every_condition_and_writes_json_and_png(classifier_run, tmp_path):
    results = measure_robustness(classifier_run, n=10, k=3, out_dir=tmp_path)
    assert json.loads((tmp_path / "robustness.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert list(results["conditions"]) == ["clean", *HELD_OUT_CONDITIONS]
    assert results["n"] == 10 and results["embedding"] == "scores"

    model = zoo.load(classifier_run)
    rows, labels, _ = validation_rows(classifier_run, 10)
    noisy = render_validation(3, rows, labels, 16, "noise")
    accuracy = np.mean(np.argmax(model.classify(noisy), axis=1) == labels)
    assert results["conditions"]["noise"]["accuracy"] == pytest.approx(accuracy)
    assert results["conditions"]["noise"]["precision_at_3"] == pytest.approx(
        leave_one_out_precision(model.classify(noisy), labels, 3))
    drops = {c: results["conditions"]["clean"]["accuracy"] - s["accuracy"]
             for c, s in results["conditions"].items() if c != "clean"}
    assert results["largest_accuracy_drop"] == pytest.approx(max(drops.values()))
    gap = results["hubble_domain_gap"]
    assert gap["stamps"] > 100
    assert gap["ratio"] == pytest.approx(gap["median_real_to_synthetic"] / gap["median_synthetic_to_synthetic"])
    lines = format_results(results).splitlines()
    assert lines[0].split() == ["condition", "precision_at_3", "accuracy"]
    assert len(lines) == 3 + len(HELD_OUT_CONDITIONS)
    assert lines[-1].startswith("Hubble domain gap: real→synthetic")


@pytest.mark.slow
def test_cli_writes_into_the_run_and_refuses_a_bad_n(classifier_run, capsys):
    evaluate.main(["robustness", "--run", str(classifier_run), "--n", "8", "--k", "2"])
    assert (classifier_run / "robustness" / "robustness.json").is_file()
    assert "8 validation galaxies per condition" in capsys.readouterr().out
    with pytest.raises(DataError, match="--n must be at least 2 galaxies, got 1"):
        measure_robustness(classifier_run, n=1)


@pytest.mark.slow
def test_a_run_trained_on_other_data_is_measured_on_galaxies_of_the_next_seed(classifier_run, tmp_path):
    import shutil

    other = tmp_path / "hubble-run"
    shutil.copytree(classifier_run, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "dataset": "hubble"}))
    rows, labels, seed = validation_rows(other, 7)
    assert seed == 4 and rows.tolist() == list(range(7))
    np.testing.assert_array_equal(labels, datasets.load("synthetic-galaxies", seed=4).labels()[:7])
