"""Writing results: every file or folder goes to a temporary name first and is renamed into place, so an
interrupted command never leaves a half-written PNG, JSON, CSV or model folder behind."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np


def write_atomic(path: str | Path, write) -> Path:
    """Calls `write(temporary_path)`, which creates a file or a folder there, and renames the result to `path`
    (a folder may replace an empty one). The temporary is created by `write`, so it gets a normal mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = str(path.with_name(f".{path.stem}-{uuid.uuid4().hex}{path.suffix}"))
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_json(path: str | Path, data) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n"))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Writes an RGB or grayscale image, uint8 or float in [0, 1], as PNG."""
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def write(tmp: str) -> None:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"could not write {path}")

    return write_atomic(path, write)


def save_figure(path: str | Path, figure) -> Path:
    """Saves a matplotlib figure as PNG and closes it."""
    import matplotlib.pyplot as plt

    try:
        return write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(figure)


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
