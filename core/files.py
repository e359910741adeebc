"""Files: results are written to a temporary name first and renamed into place, so an interrupted command never
leaves a half-written PNG, JSON, CSV or model folder behind; images are read with one error naming the file."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import DataError


def writable(path: str | Path, flag: str = "--out") -> Path:
    """Folder `path`, once it is sure that it can be created or written in: the nearest part of it that exists
    must be a folder this process may write to. A DataError naming `flag` otherwise, before any work is done."""
    path = Path(path)
    existing = next(part for part in (path, *path.parents) if part.exists())
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    else:
        return path
    raise DataError(f"cannot write to {path} ({problem}). Choose a {flag} you can write to")


def make_folder(path: str | Path, flag: str = "--out") -> Path:
    """Creates folder `path` (and its parents) unless it exists; a DataError naming `flag` when it cannot."""
    path = writable(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot write to {path} ({error.strerror or error}). "
                        f"Choose a {flag} folder you can write to") from None
    return path


def process_runs(pid: int) -> bool:
    """Whether a process with this id is running (a killed command's leftovers are recognised by it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(path: Path) -> None:
    """Deletes a file or a folder tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_atomic(path: str | Path, write) -> Path:
    """Calls `write(temporary_path)`, which creates a file or a folder there, and renames the result to `path`
    (a folder may replace an empty one). The temporary is created by `write`, so it gets a normal mode.

    The temporary's name holds this process's id: temporaries for `path` left by a process that no longer runs
    (a killed command) are removed first, those of a running one are left alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.stem}-*-*{path.suffix}"):
        pid = leftover.name[len(path.stem) + 2:].split("-", 1)[0]
        if pid.isdigit() and not process_runs(int(pid)):
            remove(leftover)
    temporary = path.with_name(f".{path.stem}-{os.getpid()}-{uuid.uuid4().hex}{path.suffix}")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    finally:
        remove(temporary)
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


def read_image(path: str | Path) -> np.ndarray:
    """The image file at `path` as it is stored: (H, W) for grayscale, (H, W, C) RGB(A) otherwise, uint8 or the
    file's 16-bit integers; DataError naming the file when it is missing, empty, truncated or not an image.

    Decoded by Pillow, which reports a bad file as an exception where libpng and libjpeg (under OpenCV) also
    print their own lines on stderr beside the one-line error.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("1", "P", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            return np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        reason = "not found" if isinstance(error, FileNotFoundError) else "corrupt or not really PNG/JPEG"
        raise DataError(f"image {path} cannot be decoded ({reason}). Replace or remove the file") from None
