"""Synthetic inputs for the measurements: galaxies, star fields, labels and a Galaxy10-format HDF5 file."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

import datasets
import zoo
from core.images import resize_batch
from core.worlds import FIELD_SIZE
from evaluation.benchmark.config import BenchmarkConfig


def model_image_size(entry: zoo.registry.Entry, config: BenchmarkConfig) -> int:
    """--image-size for galaxy models; star-field models keep their own field size (1000 px), their training
    unit in the star-field seed's Table I."""
    if entry.world == "star-fields":
        return entry.defaults.get("image_size", FIELD_SIZE)
    return config.image_size


def star_fields(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n rendered star fields (datasets.star_fields) as uint8 (n, size, size, 1), resized when not 1000 px."""
    images, _ = datasets.load("star-fields", seed=seed, limit=n).read(0, n)
    return resize_batch(np.stack(images), size)


def synthetic_images(world: str, n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """float32 (n, size, size, channels) in [0, 1]: uniform noise for galaxy models (a step costs the same
    whatever the pixels), rendered star fields for star-field models (whose fits look for stars)."""
    if world == "star-fields":
        return np.repeat(star_fields(n, size, seed).astype(np.float32) / 255, channels, axis=-1)
    return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def synthetic_labels(entry: zoo.registry.Entry, n: int, seed: int = 0) -> np.ndarray:
    """Random class labels for classifiers; zeros for the others, which ignore labels as train.py gives them."""
    return np.random.default_rng(seed).integers(0, entry.defaults.get("num_classes", 1), n)


def galaxy10_file(path: Path, n: int, size: int, seed: int = 0, distinct: int = 64) -> Path:
    """Writes a Galaxy10 DECals-format HDF5 file (uint8 `images` (n, size, size, 3), `ans` 0-9) of noisy
    blobs, deflate-compressed in one-image chunks like the download (2.5 GB for 3.5 GB of pixels), so reading
    it costs decompression. `distinct` images are compressed once and their chunks repeated, which keeps
    writing fast; every row is still read and decompressed on its own."""
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    width = rng.uniform(size / 16, size / 6, (min(n, distinct), 1, 1))
    blobs = (200 * np.exp(-(yy**2 + xx**2) / (2 * width**2))).astype(np.uint8)[..., None]
    stamps = blobs + rng.integers(0, 40, (len(blobs), size, size, 3), dtype=np.uint8)
    chunks = [zlib.compress(stamp.tobytes(), 1) for stamp in stamps]
    with h5py.File(path, "w") as h5:
        images = h5.create_dataset("images", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3),
                                   compression="gzip")
        for row in range(n):
            images.id.write_direct_chunk((row, 0, 0, 0), chunks[row % len(chunks)])
        h5.create_dataset("ans", data=rng.integers(0, 10, n).astype(np.uint8))
    return path
