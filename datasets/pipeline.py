"""One function from any source to a tf.data.Dataset: the only place pixels are cropped, resized, tiled,
augmented and scaled, so training, evaluation and queries all see images prepared the same way.

Order of stages: read blocks from the source (a Python generator, so HDF5 files stream chunk by chunk)
→ centre-crop → tiles → resize (uint8) → cache → shuffle → augment (flips, 90° rotations) → scale to
[0, 1] → batch → prefetch. Caching the resized uint8 images keeps memory small (64×64×3 = 12 KB each)
and makes every epoch after the first skip decoding. This module is TensorFlow-only by nature (tf.data);
it feeds Keras on any backend.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from core.errors import DataError
from core.runs import TrainConfig
from datasets.source import Source, Subset

SPLITS = ("train", "validation")


def split_indices(n: int, split: str | None, validation_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Sorted row indices of `split`: a seeded random `validation_fraction` of rows is validation."""
    if split is None:
        return np.arange(n)
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; use one of {SPLITS}")
    n_validation = min(n - 1, max(1, round(n * validation_fraction))) if n > 1 else 0
    is_validation = np.zeros(n, bool)
    is_validation[np.random.default_rng(seed).permutation(n)[:n_validation]] = True
    return np.flatnonzero(is_validation if split == "validation" else ~is_validation)


def split_source(source: Source, split: str | None, validation_fraction: float = 0.1, seed: int = 0) -> Subset:
    """The rows of `split` (split_indices) as a source of their own; a DataError when there are none."""
    rows = Subset(source, split_indices(len(source), split, validation_fraction, seed))
    if len(rows) == 0:
        raise DataError(f"the {split or 'whole'} split of '{source.name}' is empty. Use more images")
    return rows


def run_split(config: TrainConfig, source: Source, split: str = "validation") -> Subset:
    """A run's `split` of `source`: the split train.py made with the run's validation_fraction and seed, so an
    evaluation reads exactly the images the run held out (or trained on)."""
    return split_source(source, split, config.validation_fraction, config.seed)


def few_labels(source: Source, per_class: int, validation_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Sorted rows of `per_class` images of every class, drawn (seeded) from the training split only, so the
    validation split stays the same as with every label; a DataError when the source is unlabeled or a class has
    fewer training images."""
    if not source.labeled:
        raise DataError(f"--labels-per-class needs class labels, but dataset '{source.name}' is unlabeled. "
                        "Use a labeled dataset (synthetic-galaxies, galaxy10, a folder with class sub-folders)")
    train = split_indices(len(source), "train", validation_fraction, seed)
    labels = np.asarray(source.labels())[train]
    counts = np.bincount(labels[labels >= 0], minlength=len(source.class_names))
    if per_class > counts.min():
        smallest = int(np.argmin(counts))
        raise DataError(f"--labels-per-class {per_class} is more than the {counts.min()} training images of class "
                        f"'{source.class_names[smallest]}'. Use --labels-per-class {counts.min()} or fewer")
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(train[labels == c], per_class, replace=False)
                                   for c in range(len(source.class_names))]))


def tile_offsets(length: int, tile: int) -> np.ndarray:
    """Start offsets of the fewest `tile`-sized windows covering `length`, spread evenly (overlap, no padding).

    1000 px with 256 px tiles gives 4 tiles at 0, 248, 496, 744 (8 px overlap between neighbours).
    """
    count = -(-length // tile)
    return np.round(np.linspace(0, length - tile, count)).astype(np.int64) if count > 1 else np.zeros(1, np.int64)


def _tile_offsets_tf(length, tile: int):
    """tile_offsets inside the tf.data graph, where the image size is only known at run time."""
    count = tf.maximum((length + tile - 1) // tile, 1)
    return tf.cast(tf.round(tf.linspace(0.0, tf.cast(length - tile, tf.float32), count)), tf.int32)


def _tiles(image, tile: int):
    """All tiles of one image (rows, then columns) as a (n_tiles, tile, tile, C) tensor."""
    shape = tf.shape(image)
    ys, xs = _tile_offsets_tf(shape[0], tile), _tile_offsets_tf(shape[1], tile)
    grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")
    starts = tf.reshape(tf.stack([grid_y, grid_x], axis=-1), (-1, 2))
    return tf.map_fn(lambda yx: tf.slice(image, [yx[0], yx[1], 0], [tile, tile, -1]), starts,
                     fn_output_signature=image.dtype)


def stitch_tiles(tiles: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of tiling: places tiles (rows, then columns, as `make_dataset(tile=...)` yields them) on a
    (height, width, C) canvas, averaging where neighbours overlap."""
    tile = tiles.shape[1]
    ys, xs = tile_offsets(height, tile), tile_offsets(width, tile)
    if len(tiles) != len(ys) * len(xs):
        raise ValueError(f"{len(tiles)} tiles cannot fill {height}×{width} with {tile} px tiles "
                         f"({len(ys) * len(xs)} needed)")
    canvas = np.zeros((height, width, tiles.shape[-1]), np.float64)
    weight = np.zeros((height, width, 1), np.float64)
    for k, (y, x) in enumerate((y, x) for y in ys for x in xs):
        canvas[y:y + tile, x:x + tile] += tiles[k]
        weight[y:y + tile, x:x + tile] += 1
    return (canvas / weight).astype(tiles.dtype)


def read_rows(source: Source, start: int, stop: int,
              what_to_do: str = "Replace the file, or leave the row out with --limit or --classes"):
    """source.read(start, stop), with any failure of the source (an unreadable HDF5 chunk, a file gone) turned
    into a DataError that names the first row that cannot be read and where it comes from, then `what_to_do`."""
    try:
        return source.read(start, stop)
    except DataError:
        raise
    except Exception as error:      # noqa: BLE001 - any source's failure, reported in one line
        row, cause = first_failure(source, start, stop) or (start, error)
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise DataError(f"{source.describe(row)} cannot be read ({reason}). {what_to_do}") from None


def first_failure(source: Source, start: int, stop: int) -> tuple[int, Exception] | None:
    """The first row of start..stop-1 that the source cannot read alone, and its error."""
    for row in range(start, stop):
        try:
            source.read(row, row + 1)
        except Exception as error:      # noqa: BLE001
            return row, error
    return None


def _blocks(source: Source, chunk_size: int, tile: int | None):
    """Generator of (images (k, H, W, C) uint8, labels (k,)) blocks; images of unequal size come one per block.
    Runs inside tf.data, so every problem with an image is raised here as a DataError naming it."""
    for start in range(0, len(source), chunk_size):
        images, labels = read_rows(source, start, min(start + chunk_size, len(source)))
        labels = np.asarray(labels, np.int64)
        blocks = ([(images, labels)] if isinstance(images, np.ndarray)
                  else [(np.asarray(image)[None], label[None]) for image, label in zip(images, labels)])
        for row, (block, block_labels) in enumerate(blocks, start):
            if tile is not None and min(block.shape[1:3]) < tile:
                raise DataError(f"{source.describe(row)} is {block.shape[2]}×{block.shape[1]} px, smaller than "
                                f"--tile {tile}. Use --tile {min(block.shape[1:3])} or less")
            yield _with_channels(block, source.channels, source.describe(row)), block_labels


def _with_channels(images: np.ndarray, channels: int, where: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.shape[-1] != channels:
        raise DataError(f"{where} is {images.dtype} with {images.shape[-1]} channels, expected uint8 with "
                        f"{channels}. Convert the data to {channels}-channel uint8 images")
    return images


def _augment(image, seed):
    """A random element of the dihedral group: galaxies and star fields have no preferred orientation."""
    image = tf.image.stateless_random_flip_left_right(image, seed)
    quarter_turns = tf.random.stateless_uniform([], seed[::-1], 0, 4, dtype=tf.int32)
    return tf.image.rot90(image, quarter_turns)


def _check_crop(crop: float | None) -> None:
    if crop is not None and not 0 < crop <= 1:
        raise DataError(f"--crop must be a fraction in (0, 1], got {crop}. Use e.g. 0.5 for the central half")


def _resize(image, image_size: int):
    """uint8 (H, W, C) to (image_size, image_size, C): the central square (a photograph that is not square keeps
    its galaxy's shape instead of being squashed), antialiased bilinear, rounded back to uint8."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    resized = tf.image.resize(image[top:top + side, left:left + side], (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def make_dataset(source: Source, *, image_size: int = 64, crop: float | None = None, tile: int | None = None,
                 split: str | None = None, validation_fraction: float = 0.1, batch_size: int = 32,
                 shuffle: bool = False, augment: bool = False, repeat: bool = False, cache: bool | str = True,
                 shuffle_buffer: int = 4096, seed: int = 0, chunk_size: int = 256,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of (images float32 (B, image_size, image_size, C) in [0, 1], labels int64 (B,), -1 = unlabeled).

    crop: keep this central fraction of each image before resizing (e.g. 0.25 of a 256 px Galaxy10 image).
    tile: first cut each image into `tile`×`tile` tiles covering it (see `tile_offsets`), each an element.
    split: None for every row, or "train" / "validation" (a seeded split, the same for every call).
    cache: True keeps resized images in memory, a path caches them on disk, False re-reads every epoch.
    """
    if image_size <= 0 or batch_size <= 0:
        raise DataError(f"image size and batch size must be positive, got {image_size} and {batch_size}. "
                        "Pass positive values")
    _check_crop(crop)
    rows = split_source(source, split, validation_fraction, seed)
    channels = source.channels
    dataset = tf.data.Dataset.from_generator(
        lambda: _blocks(rows, chunk_size, tile),
        output_signature=(tf.TensorSpec((None, None, None, channels), tf.uint8), tf.TensorSpec((None,), tf.int64)),
    ).unbatch().apply(tf.data.experimental.assert_cardinality(len(rows)))
    if crop is not None and crop < 1:
        dataset = dataset.map(lambda image, label: (tf.image.central_crop(image, crop), label))
    if tile is not None:
        def tile_element(image, label):
            tiles = _tiles(image, tile)
            return tf.data.Dataset.from_tensor_slices((tiles, tf.fill([tf.shape(tiles)[0]], label)))

        dataset = dataset.flat_map(tile_element)

    dataset = dataset.map(lambda image, label: (_resize(image, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda pair, s: (_augment(pair[0], s), pair[1]), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda image, label: (tf.cast(image, tf.float32) / 255.0, label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


@contextmanager
def data_errors():
    """Re-raises a DataError from a source read inside tf.data (which wraps it in an OpError) as itself."""
    try:
        yield
    except tf.errors.OpError as exc:
        found = re.search(r"DataError: (.+)", exc.message or "")
        if found:
            raise DataError(found.group(1).strip()) from None
        raise


def to_numpy(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All (images, labels) of a finite dataset from `make_dataset`, concatenated."""
    images, labels = [], []
    with data_errors():
        for batch_images, batch_labels in dataset.as_numpy_iterator():
            images.append(batch_images)
            labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def prepare_image(image: np.ndarray, image_size: int, crop: float | None = None) -> np.ndarray:
    """One uint8 image (a query) through the same crop and resize as `make_dataset`: float32 (1, S, S, C) in [0, 1].

    The same TensorFlow ops, run eagerly: building a tf.data pipeline for one image costs a web query ~0.3 s."""
    _check_crop(crop)
    image = tf.convert_to_tensor(image if image.ndim == 3 else image[..., None])
    if crop is not None and crop < 1:
        image = tf.image.central_crop(image, crop)
    return (tf.cast(_resize(image, image_size), tf.float32) / 255.0).numpy()[None]
