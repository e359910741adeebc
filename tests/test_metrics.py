"""core/metrics.py: histogram W1 against scipy, power spectra of known images, FID / KID / precision / recall
on feature sets with known relations, and star counts on rendered fields."""
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from core import metrics
from datasets.star_fields import StarFields


def quantised(rng, shape, scale=1.0):
    """Random images whose values are exact grey levels k / 255."""
    return np.round(np.clip(rng.random(shape) ** 2 * scale, 0, 1) * 255).astype(np.float32) / 255


def test_histogram_w1_matches_scipy_on_the_pixels():
    rng = np.random.default_rng(0)
    a, b = quantised(rng, (4, 20, 20, 1)), quantised(rng, (6, 20, 20, 1), scale=0.5)
    expected = wasserstein_distance(a.ravel(), b.ravel())
    assert metrics.histogram_w1(metrics.pixel_histogram(a), metrics.pixel_histogram(b)) == pytest.approx(expected)
    assert metrics.histogram_w1(metrics.pixel_histogram(a), metrics.pixel_histogram(a)) == 0.0
    assert metrics.pixel_histogram(a).sum() == a.size


def test_white_noise_has_flat_power_at_its_variance_and_blur_removes_high_frequencies():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.5, 0.1, (3, 128, 128, 1)).astype(np.float32)
    spectra = metrics.radial_power_spectrum(noise, bands=16)
    assert spectra.shape == (3, 16)
    np.testing.assert_allclose(spectra[:, 2:], np.log10(0.01), atol=0.15)   # σ² = 0.01 in every band
    blurred = (noise + np.roll(noise, 1, axis=1) + np.roll(noise, 1, axis=2) + np.roll(noise, 1, axis=(1, 2))) / 4
    blurred_spectra = metrics.radial_power_spectrum(blurred, bands=16)
    assert (blurred_spectra[:, -4:] < spectra[:, -4:] - 0.5).all()
    assert metrics.power_spectrum_distance(spectra, spectra) == 0.0
    assert metrics.power_spectrum_distance(spectra, blurred_spectra) > 1.0
    with pytest.raises(ValueError, match="needs images of at least 32 px, got 16×16"):
        metrics.radial_power_spectrum(noise[:, :16, :16], bands=16)


def test_fid_and_kid_are_zero_for_a_set_against_itself_and_grow_with_noise():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(300, 16))
    fids = [metrics.frechet_distance(features, features + rng.normal(0, noise, features.shape))
            for noise in (0.0, 0.5, 1.0, 2.0)]
    assert fids[0] == pytest.approx(0.0, abs=1e-6)
    assert fids == sorted(fids) and fids[1] > 0.1
    kids = [metrics.kernel_distance(features, features + rng.normal(0, noise, features.shape), subsets=20,
                                    subset_size=100, seed=0) for noise in (0.0, 1.0, 3.0)]
    assert kids[0]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert kids[0]["mean"] < kids[1]["mean"] < kids[2]["mean"]
    assert kids[1]["subsets"] == 20 and kids[1]["subset_size"] == 100 and kids[1]["std"] > 0


def test_fid_matches_the_closed_form_for_gaussians_with_known_moments():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (4000, 2))
    b = rng.normal(0, 1, (4000, 2)) * 2 + 3     # μ shifted by 3 per axis, σ doubled: FID = 2·9 + 2·(1 + 4 - 4)
    assert metrics.frechet_distance(a, b) == pytest.approx(20.0, rel=0.05)


def test_precision_and_recall_are_one_for_identical_sets_and_zero_for_disjoint_ones():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(100, 4))
    assert metrics.precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0, "k": 3}
    assert metrics.precision_recall(real, real + 100) == {"precision": 0.0, "recall": 0.0, "k": 3}
    # generated points that cover only half the real cloud: precise, with about half the recall
    half = real[real[:, 0] > 0]
    found = metrics.precision_recall(real, half + rng.normal(0, 0.01, half.shape))
    assert found["precision"] == 1.0 and 0.3 < found["recall"] < 0.8
    with pytest.raises(ValueError, match="more than 3 vectors per set"):
        metrics.precision_recall(real[:3], real[:3])


def test_star_counts_find_every_rendered_star():
    fields = StarFields(2, seed=0)
    images, _ = fields.read(0, 2)
    expected = [len(fields.field(i)[1]) for i in range(2)]
    np.testing.assert_array_equal(metrics.star_counts(images.astype(np.float32) / 255), expected)
    assert metrics.star_counts(np.zeros((1, 64, 64, 1), np.float32)).tolist() == [0]


def test_knn_accuracy_votes_among_the_nearest_reference_vectors():
    reference = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [5.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])
    # k=3: query 0.05 → three 0s; query 1.05 → 1, 1, then 0 (0.2 is nearer than 5.0): class 1 wins 2 to 1;
    # query 4.0 → 5.0, 1.1, 1.0: class 1 wins 2 to 1, so the class-2 query is wrong
    queries, query_labels = np.array([[0.05], [1.05], [4.0]]), np.array([0, 1, 2])
    assert metrics.knn_accuracy(reference, labels, queries, query_labels, k=3) == pytest.approx(2 / 3)
    assert metrics.knn_accuracy(reference, labels, queries, query_labels, k=1) == 1.0
    # a tie (k=2: one vote for 0.2's class 0, one for 1.0's class 1) goes to the nearer neighbour's class
    assert metrics.knn_accuracy(reference, labels, np.array([[0.58], [0.62]]), np.array([0, 1]), k=2) == 1.0
