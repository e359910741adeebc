"""Image batch helpers: float32 NHWC in [0, 1] between modules, uint8 grey levels on disk (docs/architecture.md)."""
from __future__ import annotations

import cv2
import numpy as np

GREY_LEVELS = 256


def grey_levels(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as uint8 grey levels (the 8-bit values they have as PNGs)."""
    return np.rint(np.clip(np.asarray(images, np.float32), 0, 1) * (GREY_LEVELS - 1)).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, fill: float = 0.0) -> np.ndarray:
    """Tiles a batch (N, H, W, C) in [0, 1] into one image, row by row, with a border of `fill` between cells."""
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding, channels), fill,
                   np.float32)
    for k, image in enumerate(images):
        y, x = padding + (k // columns) * (height + padding), padding + (k % columns) * (width + padding)
        grid[y:y + height, x:x + width] = image
    return grid


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """A batch (N, H, W, C) at size×size, channel axis kept: area averaging to shrink, bilinear to enlarge,
    nothing when it already fits."""
    if images.shape[1:3] == (size, size):
        return images
    method = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=method).reshape(size, size, -1)
                     for image in images])
