"""The built-in synthetic galaxies: deterministic, balanced, any size 16-256, and not separable by brightness
(the preview command: tests/test_preview.py)."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import datasets
from core.errors import DataError
from datasets.synthetic_galaxies import CLASS_NAMES, SyntheticGalaxies, milky_way, render


def test_images_are_uint8_rgb_of_the_asked_size():
    for size in (16, 64, 256):
        images, labels = SyntheticGalaxies(size, n=5).read(0, 5)
        assert images.shape == (5, size, size, 3) and images.dtype == np.uint8
        assert images.max() > 150 and np.median(images) < 40   # a bright galaxy on a dark sky


def test_image_i_depends_only_on_seed_and_index():
    source = SyntheticGalaxies(32, n=12, seed=3)
    whole, labels = source.read(0, 12)
    part, part_labels = source.read(4, 7)
    np.testing.assert_array_equal(part, whole[4:7])
    np.testing.assert_array_equal(part_labels, labels[4:7])
    again, _ = SyntheticGalaxies(32, n=12, seed=3).read(0, 12)
    np.testing.assert_array_equal(again, whole)
    other, _ = SyntheticGalaxies(32, n=12, seed=4).read(0, 12)
    assert not np.array_equal(other, whole)


def test_classes_are_balanced_and_named_like_galaxy10():
    source = datasets.load("synthetic-galaxies", limit=None)
    assert source.class_names == CLASS_NAMES == ("Round Smooth", "Edge-on", "Barred Spiral", "Unbarred Spiral",
                                                 "Merging")
    counts = np.bincount(source.labels(), minlength=5)
    assert counts.sum() == len(source) == 5000 and counts.max() - counts.min() <= 1


@pytest.mark.slow
def test_mean_colour_and_brightness_do_not_give_the_class_away():
    images, labels = SyntheticGalaxies(32, n=500).read(0, 500)
    features = images.astype(np.float64).mean(axis=(1, 2))          # mean R, G, B per image
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), features, labels, cv=3).mean()
    assert accuracy < 0.5                                            # chance is 0.2; structure must be learned


def test_render_rejects_bad_size_and_label():
    with pytest.raises(DataError, match="rendered from 16 to 256 px, got --image-size 8"):
        SyntheticGalaxies(8)
    with pytest.raises(ValueError, match="label must be 0..4, got 5"):
        render(5, 32, np.random.default_rng(0))


def test_milky_way_is_a_fixed_face_on_barred_spiral():
    image = milky_way(64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, milky_way(64))
    centre = image[24:40, 24:40].astype(float).mean()
    assert centre > 2 * image.astype(float).mean()                   # a bright bulge and bar in the middle
    assert milky_way(128).shape == (128, 128, 3)
