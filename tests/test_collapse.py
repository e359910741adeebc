"""core/collapse.py: exact mode-collapse statistics on small batches, and the verdict on black, identical and varied
batches."""
import numpy as np
import pytest

from core.collapse import CollapseThresholds, collapse_reasons, collapse_statistics


def blobs(n, size=16, seed=0):
    """n dark images with one Gaussian blob each, of random position, width and brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(3, size - 3, (n, 2, 1, 1))
    widths = rng.uniform(1, 3, (n, 1, 1))
    peaks = rng.uniform(0.5, 1.0, (n, 1, 1))
    images = 0.03 + peaks * np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / (2 * widths ** 2))
    return np.clip(images, 0, 1)[..., None].astype(np.float32)


def test_statistics_of_a_black_and_a_white_image():
    batch = np.stack([np.zeros((4, 4, 1)), np.ones((4, 4, 1))]).astype(np.float32)
    statistics = collapse_statistics(batch)
    assert statistics == pytest.approx({"pixel_std": 0.5, "black_fraction": 0.5, "pairwise_distance": 1.0})


def test_pairwise_distance_is_the_mean_rms_difference():
    batch = np.stack([np.full((2, 2, 3), v, np.float32) for v in (0.2, 0.4, 0.8)])
    # pairs differ by 0.2, 0.6 and 0.4 at every pixel
    assert collapse_statistics(batch)["pairwise_distance"] == pytest.approx(0.4)


def test_an_all_black_batch_is_collapsed_with_or_without_real_images():
    black = np.zeros((16, 16, 16, 1), np.float32)
    real = collapse_statistics(blobs(16))
    for reference in (real, None):
        reasons = collapse_reasons(collapse_statistics(black), reference)
        assert reasons[0] == "100% of the images are black"
        assert len(reasons) == 3


def test_a_varied_batch_is_not_collapsed():
    real, generated = collapse_statistics(blobs(32, seed=1)), collapse_statistics(blobs(32, seed=2))
    assert generated["black_fraction"] == 0 and generated["pairwise_distance"] > 0.05
    assert collapse_reasons(generated, real) == []
    assert collapse_reasons(generated) == []


def test_one_image_repeated_with_pixel_noise_is_collapsed_against_real_images():
    rng = np.random.default_rng(3)
    same = np.clip(blobs(1)[0] + rng.normal(0, 0.02, (32, 16, 16, 1)), 0, 1)
    reasons = collapse_reasons(collapse_statistics(same), collapse_statistics(blobs(32)))
    assert len(reasons) == 2
    assert reasons[0].startswith("pixel std 0.0") and "of the real images'" in reasons[0]
    assert reasons[1].startswith("pairwise distance 0.0")


def test_black_level_and_thresholds_are_configurable():
    faint = np.full((4, 8, 8, 1), 0.04, np.float32)
    assert collapse_statistics(faint)["black_fraction"] == 1.0
    assert collapse_statistics(faint, black_level=0.01)["black_fraction"] == 0.0
    strict = CollapseThresholds(min_spread_ratio=0.99)
    real = collapse_statistics(blobs(32, seed=1))
    assert collapse_reasons(collapse_statistics(blobs(32, seed=2)), real, strict) != []


def test_a_single_image_is_refused():
    with pytest.raises(ValueError, match="at least 2 images"):
        collapse_statistics(np.zeros((1, 8, 8, 3), np.float32))
