"""Hubble Deep Field source: real galaxy stamps detected in the scikit-image field, brightest first, deterministic."""
import numpy as np
import pytest

import datasets
from core.errors import DataError
from datasets import hubble

FIELD_HEIGHT, FIELD_WIDTH = 872, 1000


@pytest.fixture(scope="module")
def source():
    return hubble.open_source(image_size=48)


def test_stamps_are_uint8_squares_of_the_requested_size(source):
    assert (source.name, source.class_names, source.channels) == ("hubble", (), 3)
    assert len(source) > 20
    images, labels = source.read(0, len(source))
    assert images.shape == (len(source), 48, 48, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and (labels == -1).all() and (source.labels() == -1).all()


def test_sources_are_sorted_brightest_first_and_lie_inside_the_field(source):
    metadata = source.metadata(np.arange(len(source)))
    assert set(metadata) == {"x", "y", "area", "flux"}
    assert (np.diff(metadata["flux"]) <= 0).all() and metadata["flux"][-1] > 0
    assert ((metadata["x"] > 0) & (metadata["x"] < FIELD_WIDTH)).all()
    assert ((metadata["y"] > 0) & (metadata["y"] < FIELD_HEIGHT)).all()
    assert (metadata["area"] >= hubble.MIN_AREA).all()
    assert source.metadata(np.array([3, 1]))["flux"].tolist() == metadata["flux"][[3, 1]].tolist()


def test_stamps_are_centred_galaxies_not_blank(source):
    images = source.read(0, len(source))[0].astype(np.float64).mean(axis=-1)
    centre = images[:, 20:28, 20:28].mean(axis=(1, 2))
    corners = np.concatenate([images[:, :6, :6], images[:, -6:, -6:]], axis=1).mean(axis=(1, 2))
    assert (images.std(axis=(1, 2)) > 5).all()
    assert (centre > corners + 20).mean() > 0.95


def test_detection_is_deterministic(source):
    again = datasets.load("hubble", image_size=48, seed=7)
    np.testing.assert_array_equal(again.read(0, len(again))[0], source.read(0, len(source))[0])


def test_non_positive_image_size_is_refused():
    with pytest.raises(DataError, match="image size must be positive, got 0"):
        hubble.open_source(image_size=0)
