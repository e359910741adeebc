"""Any folder of PNG/JPEG images, so users can train on or query their own cut-outs without converting them.

Layout decides labels: a folder of class sub-folders (`spiral/a.png`, `elliptical/b.jpg`) is labeled by
sub-folder name; a folder of loose images is unlabeled. Images are decoded at read time (core.files.read_image;
the listing alone is checked up front), come back as RGB uint8 whatever the file (grayscale, alpha, 16-bit),
and keep their own size: the pipeline resizes them.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError
from core.files import read_image
from datasets.source import Source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted, skipping hidden ones."""
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."))


def decode_image(path: Path, channels: int = 3) -> np.ndarray:
    """The file at `path` as uint8 (H, W, channels): RGB for 3, grayscale (H, W, 1) for 1 (ITU-R 601 luma, as
    OpenCV); 16-bit files keep their high byte, alpha is dropped. DataError naming the file when it cannot be
    decoded."""
    image = read_image(path)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
    if image.ndim == 3:
        image = image[..., 0] if image.shape[-1] == 2 else image[..., :3]     # LA → L; RGBA → RGB
    if channels == 1:
        gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        return gray[..., None]
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


class ImageFolder(Source):
    """Image files under `root`: class sub-folders give labels, loose files are unlabeled (label -1)."""

    name = "folder"
    channels = 3

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise DataError(f"image folder {self.root} does not exist. Pass an existing folder with --data-dir")
        if not self.root.is_dir():
            raise DataError(f"{self.root} is a file, not a folder. "
                            "Pass the folder that holds the images with --data-dir")
        loose_files = _image_files(self.root)
        class_files = {folder.name: files for folder in sorted(self.root.iterdir())
                       if folder.is_dir() and not folder.name.startswith(".") and (files := _image_files(folder))}
        if loose_files and class_files:
            raise DataError(f"{self.root} holds both loose images and class sub-folders ({', '.join(class_files)}). "
                            "Move the loose images into a class sub-folder or elsewhere")
        if not loose_files and not class_files:
            raise DataError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in {self.root} or its sub-folders. "
                            "Point --data-dir at a folder of images or of class sub-folders of images")
        self.class_names = tuple(class_files)
        if class_files:
            self.paths = [path for files in class_files.values() for path in files]
            self._labels = np.repeat(np.arange(len(class_files), dtype=np.int64),
                                     [len(files) for files in class_files.values()])
        else:
            self.paths = loose_files
            self._labels = np.full(len(loose_files), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, start: int, stop: int) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
        """Decoded images start..stop-1: one stacked array when their sizes agree, else a list."""
        images = [decode_image(path) for path in self.paths[start:stop]]
        if images and all(image.shape == images[0].shape for image in images):
            images = np.stack(images)
        return images, self._labels[start:stop]

    def labels(self) -> np.ndarray:
        return self._labels

    def describe(self, row: int) -> str:
        return f"image {self.paths[row]}"

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The file path of each image, relative to the root folder."""
        paths = [self.paths[i].relative_to(self.root).as_posix() for i in np.asarray(indices)]
        return {"path": np.array(paths, dtype=str)}


def open_source(data_dir: str | os.PathLike | None, image_size: int = 64, seed: int = 0) -> ImageFolder:
    """Lists the images in `data_dir`; `image_size` and `seed` are unused (the pipeline resizes, order is sorted)."""
    if not data_dir:
        raise DataError("the folder dataset needs a folder of images. Pass it with --data-dir")
    return ImageFolder(data_dir)
