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
