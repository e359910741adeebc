"""Writing results: every file goes to a temporary name first and is renamed into place, so an interrupted
command never leaves a half-written PNG, JSON or CSV behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


def write_atomic(path: str | Path, write) -> Path:
    """Calls `write(temporary_path)` and renames the result to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~current_umask())   # mkstemp makes it owner-only; give it a normal file's mode
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles a batch (N, H, W, C) in [0, 1] into one image, row by row, with a dark border between cells."""
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
                    np.float32)
    for k, image in enumerate(images):
        y, x = padding + (k // columns) * (height + padding), padding + (k % columns) * (width + padding)
        grid[y:y + height, x:x + width] = image
    return grid
