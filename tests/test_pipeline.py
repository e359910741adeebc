import numpy as np
import pytest

import datasets
from core.errors import DataError
from core.runs import TrainConfig
from datasets.pipeline import (
    make_dataset,
    prepare_image,
    run_split,
    split_indices,
    stitch_tiles,
    tile_offsets,
    to_numpy,
)
from datasets.source import ArraySource, Subset


def test_whole_source_round_trips_exactly_in_order(striped_source):
    images, labels = to_numpy(make_dataset(striped_source, image_size=24, batch_size=7))
    assert images.dtype == np.float32 and images.shape == (40, 24, 24, 3)
    np.testing.assert_array_equal(np.round(images * 255).astype(np.uint8), striped_source.images)
    np.testing.assert_array_equal(labels, striped_source.labels())


def test_batches_have_the_requested_size(striped_source):
    dataset = make_dataset(striped_source, image_size=24, batch_size=16)
    assert dataset.cardinality() == 3  # known up front, so Keras shows progress and needs no probing step
    assert [len(b[0]) for b in dataset.as_numpy_iterator()] == [16, 16, 8]
    sizes = [len(b[0]) for b in make_dataset(striped_source, image_size=24, batch_size=16,
                                             drop_remainder=True).as_numpy_iterator()]
    assert sizes == [16, 16]


def test_train_and_validation_splits_are_disjoint_seeded_and_cover_everything():
    train, validation = split_indices(100, "train", 0.2, seed=3), split_indices(100, "validation", 0.2, seed=3)
    assert len(validation) == 20 and len(train) == 80
    assert set(train).isdisjoint(validation) and set(train) | set(validation) == set(range(100))
    np.testing.assert_array_equal(validation, split_indices(100, "validation", 0.2, seed=3))
    assert not np.array_equal(validation, split_indices(100, "validation", 0.2, seed=4))
    assert len(split_indices(3, "validation", 0.01)) == 1


def test_split_datasets_read_the_right_rows(striped_source):
    _, labels = to_numpy(make_dataset(striped_source, image_size=24, split="validation", validation_fraction=0.25))
    np.testing.assert_array_equal(labels, striped_source.labels()[split_indices(40, "validation", 0.25)])


def test_a_runs_split_holds_out_the_images_its_training_held_out(striped_source):
    config = TrainConfig(model="vae", validation_fraction=0.25, seed=5)
    held_out, trained_on = run_split(config, striped_source), run_split(config, striped_source, "train")
    images, labels = to_numpy(make_dataset(striped_source, image_size=24, split="validation", validation_fraction=0.25,
                                           seed=5))
    np.testing.assert_array_equal(held_out.indices, split_indices(40, "validation", 0.25, seed=5))
    np.testing.assert_array_equal(np.round(images * 255).astype(np.uint8), held_out.read(0, 10)[0])
    np.testing.assert_array_equal(labels, held_out.labels())
    assert len(trained_on) == 30 and set(trained_on.indices).isdisjoint(held_out.indices)
    with pytest.raises(DataError, match="the validation split of 'stripes' is empty. Use more images"):
        run_split(config, Subset(striped_source, [0]))


def test_resize_and_centre_crop():
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 200
    cropped = prepare_image(image, image_size=20, crop=0.5)
    assert cropped.shape == (1, 20, 20, 3)
    np.testing.assert_allclose(cropped, 200 / 255, atol=1e-6)  # the central half is the bright square
    resized = prepare_image(image, image_size=8)
    assert resized.shape == (1, 8, 8, 3) and resized[0, 4, 4, 0] == pytest.approx(200 / 255, abs=1e-6)
    assert resized[0, 0, 0, 0] == 0


@pytest.mark.parametrize("shape, crop", [((37, 53, 3), None), ((256, 256, 3), 0.37), ((45, 45, 1), 0.5)])
def test_a_query_is_prepared_exactly_like_the_dataset(shape, crop):
    images = np.random.default_rng(0).integers(0, 256, (3, *shape), dtype=np.uint8)
    dataset, _ = to_numpy(make_dataset(ArraySource(images), image_size=24, crop=crop, cache=False))
    for image, expected in zip(images, dataset):
        np.testing.assert_array_equal(prepare_image(image, 24, crop)[0], expected)


def test_shuffle_changes_order_but_not_content(striped_source):
    images, labels = to_numpy(make_dataset(striped_source, image_size=24, shuffle=True, seed=1))
    assert not np.array_equal(labels, striped_source.labels())
    assert sorted(map(bytes, np.round(images * 255).astype(np.uint8))) == sorted(map(bytes, striped_source.images))


def test_augmentation_only_flips_and_rotates():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (1, 12, 12, 3), dtype=np.uint8)
    source = ArraySource(np.repeat(image, 32, axis=0))
    images, _ = to_numpy(make_dataset(source, image_size=12, augment=True, seed=5))
    variants = {bytes(np.rot90(np.fliplr(image[0]) if flip else image[0], k)) for flip in (0, 1) for k in range(4)}
    produced = {bytes(np.round(a * 255).astype(np.uint8)) for a in images}
    assert produced <= variants and len(produced) > 2


def test_tile_offsets_cover_the_image_evenly():
    np.testing.assert_array_equal(tile_offsets(1000, 256), [0, 248, 496, 744])
    np.testing.assert_array_equal(tile_offsets(512, 256), [0, 256])
    np.testing.assert_array_equal(tile_offsets(256, 256), [0])


def test_tiling_then_stitching_restores_the_image():
    rng = np.random.default_rng(0)
    fields = rng.integers(0, 255, (2, 100, 100, 1), dtype=np.uint8)
    tiles, labels = to_numpy(make_dataset(ArraySource(fields), image_size=32, tile=32, batch_size=64))
    assert tiles.shape == (32, 32, 32, 1) and (labels == -1).all()
    np.testing.assert_array_equal(np.round(tiles[1] * 255).astype(np.uint8), fields[0, :32, 23:55])
    np.testing.assert_array_equal(np.round(stitch_tiles(tiles[16:], 100, 100) * 255).astype(np.uint8), fields[1])
    with pytest.raises(ValueError, match="15 tiles cannot fill"):
        stitch_tiles(tiles[:15], 100, 100)


def test_images_of_different_sizes_are_resized_to_one_size():
    class Mixed(ArraySource):
        def read(self, start, stop):
            images = [np.full((10 + 5 * i, 20, 3), 50 * i, np.uint8) for i in range(start, stop)]
            return images, self._labels[start:stop]

    source = Mixed(np.zeros((4, 1, 1, 3), np.uint8))
    images, _ = to_numpy(make_dataset(source, image_size=8, batch_size=3))
    assert images.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(images[:, 4, 4, 0], np.arange(4) * 50 / 255, atol=1e-6)


def test_subset_reads_scattered_rows_in_spans(striped_source):
    subset = Subset(striped_source, np.array([0, 3, 4, 39]))
    for max_span in (2, 512):
        images, labels = subset.read(0, 4, max_span=max_span)
        np.testing.assert_array_equal(np.stack(images), striped_source.images[[0, 3, 4, 39]])
        np.testing.assert_array_equal(labels, striped_source.labels()[[0, 3, 4, 39]])


def test_subset_reads_at_most_twice_the_rows_it_keeps(striped_source):
    rows_read = []

    class Counting(ArraySource):
        def read(self, start, stop):
            rows_read.append(stop - start)
            return super().read(start, stop)

    base = Counting(striped_source.images, striped_source.labels())
    sparse = np.arange(0, len(base), 10)                 # a validation split: one row in ten
    dense = np.setdiff1d(np.arange(len(base)), sparse)   # its training split
    for indices in (sparse, dense):
        rows_read.clear()
        images, _ = Subset(base, indices).read(0, len(indices))
        np.testing.assert_array_equal(np.stack(images), base.images[indices])
        assert sum(rows_read) <= 2 * len(indices)
    assert len(rows_read) == 1                            # the dense split in one block


def test_bad_options_are_clear_errors(striped_source):
    with pytest.raises(DataError, match="--crop must be a fraction"):
        make_dataset(striped_source, crop=1.5)
    with pytest.raises(DataError, match="image size and batch size must be positive"):
        make_dataset(striped_source, batch_size=0)
    with pytest.raises(DataError, match="is float32 with 3 channels, expected uint8 with 3"):
        to_numpy(make_dataset(ArraySource(np.zeros((2, 4, 4, 3), np.float32)), image_size=4))


def test_select_classes_renumbers_labels_in_the_given_order(striped_source):
    selected = datasets.select_classes(striped_source, "columns")
    assert selected.class_names == ("columns",) and len(selected) == 20
    assert (selected.labels() == 0).all()
    both = datasets.select_classes(striped_source, ["1", "rows"])
    assert both.class_names == ("columns", "rows")
    np.testing.assert_array_equal(both.labels(), 1 - striped_source.labels())
    with pytest.raises(DataError, match="unknown class 'spiral' in --classes. Use indices 0-1 or names: rows, columns"):
        datasets.select_classes(striped_source, "spiral")
    with pytest.raises(DataError, match="unlabeled"):
        datasets.select_classes(ArraySource(striped_source.images), "0")


def test_load_rejects_unknown_dataset_and_missing_data_dir():
    with pytest.raises(DataError, match="unknown dataset 'sdss'. Choose one of: synthetic-galaxies, galaxy10"):
        datasets.load("sdss")
    with pytest.raises(DataError, match="dataset 'galaxy10' needs --data-dir"):
        datasets.load("galaxy10")
