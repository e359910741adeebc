"""precision@k: the value on hand-made and brute-force cases, chance level, and the run-level report."""
import json

import numpy as np
import pytest
from conftest import train_tiny_classifier

from core.errors import DataError
from datasets.pipeline import make_dataset, to_numpy
from search.embedding import GallerySpec
from evaluation.retrieval import (
    chance_precision,
    evaluate_retrieval,
    format_results,
    linear_probe_accuracy,
    precision_at_k,
)


def test_precision_at_k_on_points_on_a_line():
    gallery = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    queries = np.array([[0.05], [5.05], [2.4]], np.float32)
    # k=3: the first two queries find their own cluster; the third (class 1) is nearer cluster 0 (2.2 < 2.6)
    precision, per_query = precision_at_k(gallery, labels, queries, np.array([0, 1, 1]), 3)
    np.testing.assert_allclose(per_query, [1.0, 1.0, 0.0])
    assert precision == pytest.approx(2 / 3)
    _, per_query = precision_at_k(gallery, labels, queries, np.array([0, 1, 1]), 4)
    np.testing.assert_allclose(per_query, [0.75, 0.75, 0.25])


def test_precision_at_k_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    gallery, queries = rng.standard_normal((200, 6)), rng.standard_normal((40, 6))
    gallery_labels, query_labels = (gallery[:, 0] > 0).astype(int), (queries[:, 0] > 0).astype(int)
    distances = ((queries[:, None] - gallery[None]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1)[:, :7]
    expected = np.mean(gallery_labels[nearest] == query_labels[:, None])
    precision, _ = precision_at_k(gallery.astype(np.float32), gallery_labels, queries.astype(np.float32),
                                  query_labels, 7)
    assert precision == pytest.approx(expected)
    assert 0.7 < precision < 1  # the first coordinate decides the class, five others are noise


def test_chance_is_the_overlap_of_class_shares():
    assert chance_precision(np.array([0, 0, 1, 1]), np.array([0, 1])) == pytest.approx(0.5)
    assert chance_precision(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2])) == pytest.approx(0.75 * 0.5 + 0.25 * 0.25)


def test_linear_probe_standardises_features_before_the_logistic_regression():
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    # the class is in a feature a million times smaller than four noise features: only standardised does the
    # (regularised) regression reach it
    features = np.column_stack([1e-6 * (labels + 0.1 * rng.standard_normal(200)), rng.standard_normal((200, 4))])
    assert linear_probe_accuracy(features[:150], labels[:150], features[150:], labels[150:]) == 1.0
    shuffled = rng.permutation(labels)                        # labels that features cannot predict
    assert 0.3 < linear_probe_accuracy(features[:150], shuffled[:150], features[150:], shuffled[150:]) < 0.7


def test_linear_probe_needs_two_classes():
    with pytest.raises(DataError, match="the linear probe needs at least two classes in the training split"):
        linear_probe_accuracy(np.zeros((4, 2)), np.zeros(4), np.zeros((2, 2)), np.zeros(2))


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    return train_tiny_classifier(tmp_path_factory.mktemp("runs") / "classifier", limit=60, seed=2)


@pytest.mark.slow
def test_run_report_measures_scores_and_pixels_on_the_held_out_split(classifier_run, tmp_path):
    results = evaluate_retrieval(classifier_run, k=5, out_dir=tmp_path)
    assert json.loads((tmp_path / "retrieval.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "retrieval.png").read_bytes()[:4] == b"\x89PNG"
    assert results["k"] == 5 and results["n_queries"] == 6 and results["n_gallery"] == 54
    assert results["scores"]["dimensions"] == 5 and results["pixels"]["dimensions"] == 16 * 16 * 3

    spec = GallerySpec(image_size=16, limit=60, seed=2)
    source = spec.open()
    train_images, train_labels = to_numpy(make_dataset(source, image_size=16, split="train", seed=2))
    query_images, query_labels = to_numpy(make_dataset(source, image_size=16, split="validation", seed=2))
    expected, _ = precision_at_k(train_images.reshape(54, -1), train_labels, query_images.reshape(6, -1),
                                 query_labels, 5)
    assert results["pixels"]["precision_at_k"] == pytest.approx(expected)
    assert results["chance"] == pytest.approx(chance_precision(train_labels, query_labels))
    per_class = results["pixels"]["per_class"]
    assert set(per_class) <= set(source.class_names)
    counts = [np.sum(query_labels == source.class_names.index(name)) for name in per_class]
    assert np.dot(counts, list(per_class.values())) / 6 == pytest.approx(expected)

    # the linear probe: fitted on the 54 training vectors, scored on the 6 held-out ones, for both embeddings
    probe = linear_probe_accuracy(train_images.reshape(54, -1), train_labels, query_images.reshape(6, -1), query_labels)
    assert results["pixels"]["linear_probe"] == pytest.approx(probe)
    assert round(results["scores"]["linear_probe"] * 6, 6) in (0, 1, 2, 3, 4, 5, 6)
    table = format_results(results).splitlines()
    assert table[0].split()[-2:] == ["linear", "probe"]
    assert table[1].split() == ["pixels", "768", f"{expected:.3f}", f"{probe:.3f}"]


@pytest.mark.slow
def test_retrieval_refuses_unlabeled_data_and_pixels_as_the_learned_embedding(classifier_run):
    with pytest.raises(DataError, match="retrieval needs class labels, but dataset 'hubble' is unlabeled"):
        evaluate_retrieval(classifier_run, dataset="hubble")
    with pytest.raises(DataError, match="retrieval always measures pixels as the baseline"):
        evaluate_retrieval(classifier_run, embedding="pixels")
