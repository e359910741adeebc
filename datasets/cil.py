"""The ETH CIL "cosmology" data as users have it on disk, read without conversion.

Layout of the folder passed with --data-dir:

    labeled/<id>.png   1000×1000 grayscale uint8 fields; labeled.csv `Id,Actual` says 1.0 (a real
                       cosmology image) or 0.0 (not one)
    scored/<id>.png    fields with a similarity score to the real ones; scored.csv `Id,Actual`, 0-8
    query/<id>.png     fields to score, no CSV

`datasets.load("cil", data_dir=...)` gives the real labeled fields (Actual 1), the training set of the
generative models; `CILSource(root, subset)` opens any of "real", "labeled" (labels 0 fake / 1 real),
"scored" (`scores` and `metadata(...)["score"]`) and "query". The CSVs and the listing are checked when
the source opens (missing folder or CSV, bad header, an id without its image, a value out of range, a
duplicate id), each image when it is read (undecodable, not 8-bit grayscale, wrong size); every error
names the file and the id. Write a small layout with `python -m datasets.star_fields --write DIR`.
"""
from __future__ import annotations

import csv
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.files import read_image
from core.worlds import FIELD_SIZE, SCORE_RANGE
from datasets.source import Source

SUBSETS = ("real", "labeled", "scored", "query")
FIELD_SHAPE = (FIELD_SIZE, FIELD_SIZE)


def read_csv(path: Path, allowed: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids (int64) and values (float64) of an `Id,Actual` CSV; `allowed` is "label" (0 or 1) or "score" (0-8)."""
    if not path.is_file():
        raise DataError(f"{path} is missing. A CIL folder holds labeled.csv and scored.csv next to labeled/ "
                        "and scored/; point --data-dir at that folder")
    ids: list[int] = []
    values: list[float] = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        if header != ["Id", "Actual"]:
            raise DataError(f"{path} starts with {','.join(header) or 'nothing'}, expected the header Id,Actual. "
                            "Fix the file's first line")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                identifier, value = int(row[0]), float(row[1])
            except (ValueError, IndexError):
                raise DataError(f"{path} line {line}: '{','.join(row)}' is not an integer id and a number. "
                                "Fix or remove that line") from None
            bad = (value not in (0.0, 1.0) if allowed == "label"
                   else not (math.isfinite(value) and SCORE_RANGE[0] <= value <= SCORE_RANGE[1]))
            if bad:
                expected = "0 or 1" if allowed == "label" else f"a score from {SCORE_RANGE[0]:g} to {SCORE_RANGE[1]:g}"
                raise DataError(f"{path} line {line}: id {identifier} has Actual {row[1].strip()}, "
                                f"expected {expected}. Fix that value")
            ids.append(identifier)
            values.append(value)
    ids_array = np.asarray(ids, np.int64)
    unique, counts = np.unique(ids_array, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path} lists id {unique[counts > 1][0]} more than once. Keep one row per id")
    return ids_array, np.asarray(values, np.float64)


def _listed_ids(folder: Path) -> np.ndarray:
    """Ids of the `<id>.png` files in `folder`, sorted (other files are ignored)."""
    if not folder.is_dir():
        raise DataError(f"{folder} is missing. A CIL folder holds labeled/, scored/ and query/; "
                        "point --data-dir at that folder")
    stems = [name[:-4] for name in os.listdir(folder) if name.endswith(".png")]
    return np.array(sorted(int(stem) for stem in stems if stem.isdigit()), np.int64)


def _check_images_exist(csv_path: Path, folder: Path, ids: np.ndarray) -> None:
    missing = np.setdiff1d(ids, _listed_ids(folder))
    if len(missing):
        raise DataError(f"{csv_path} lists id {missing[0]} but {folder / f'{missing[0]}.png'} does not exist "
                        f"({len(missing)} ids without an image). Restore the images or remove their rows")


def read_field(path: Path, identifier: int) -> np.ndarray:
    """One CIL image as uint8 (1000, 1000); DataError naming the file and id when it is not one."""
    try:
        image = read_image(path)
    except DataError:
        raise DataError(f"image {path} (id {identifier}) cannot be decoded. Replace or remove it") from None
    if image.ndim != 2 or image.dtype != np.uint8 or image.shape != FIELD_SHAPE:
        described = f"{image.shape[1]}×{image.shape[0]} {image.dtype}" + (
            f" with {image.shape[2]} channels" if image.ndim == 3 else " grayscale")
        raise DataError(f"image {path} (id {identifier}) is {described}, "
                        f"expected {FIELD_SIZE}×{FIELD_SIZE} uint8 grayscale. "
                        "Convert it or remove it")
    return image


class CILSource(Source):
    """One subset of a CIL cosmology folder; images (1000, 1000, 1) uint8 in id order of the CSV / listing."""

    name = "cil"
    channels = 1

    def __init__(self, root: str | os.PathLike, subset: str = "real"):
        if subset not in SUBSETS:
            raise ValueError(f"unknown CIL subset '{subset}'; use one of {SUBSETS}")
        self.root, self.subset = Path(root).expanduser(), subset
        if not self.root.is_dir():
            raise DataError(f"CIL folder {self.root} does not exist. Point --data-dir at the folder holding "
                            "labeled/, scored/, query/ and the CSVs")
        self.scores: np.ndarray | None = None
        if subset == "query":
            self.folder = self.root / "query"
            self.ids = _listed_ids(self.folder)
            self._labels = np.full(len(self.ids), -1, np.int64)
            return
        self.folder = self.root / ("scored" if subset == "scored" else "labeled")
        csv_path = self.root / ("scored.csv" if subset == "scored" else "labeled.csv")
        ids, values = read_csv(csv_path, "score" if subset == "scored" else "label")
        _check_images_exist(csv_path, self.folder, ids)
        if subset == "real":
            self.ids, self._labels = ids[values == 1.0], np.full(int((values == 1.0).sum()), -1, np.int64)
        elif subset == "labeled":
            self.ids, self._labels = ids, values.astype(np.int64)
            self.class_names = ("fake", "real")
        else:
            self.ids, self._labels, self.scores = ids, np.full(len(ids), -1, np.int64), values

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Images start..stop-1, decoded on all cores by threads (OpenCV releases the GIL)."""
        ids = self.ids[max(0, start):stop]
        images = np.empty((len(ids), *FIELD_SHAPE, 1), np.uint8)
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            for row, image in enumerate(pool.map(lambda i: read_field(self.folder / f"{i}.png", int(i)), ids)):
                images[row, ..., 0] = image
        return images, self._labels[max(0, start):max(0, start) + len(ids)].copy()

    def describe(self, row: int) -> str:
        return f"image {self.folder / f'{self.ids[row]}.png'}"

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The file id of each image and, for the scored subset, its score."""
        indices = np.asarray(indices)
        columns = {"id": self.ids[indices]}
        if self.scores is not None:
            columns["score"] = self.scores[indices]
        return columns


def open_scored(data_dir: str | os.PathLike | None, image_size: int = FIELD_SIZE, seed: int = 0) -> CILSource:
    """The scored fields of the CIL folder `data_dir` with their scores (what the scorers learn from)."""
    if not data_dir:
        raise DataError("the cil dataset needs the CIL cosmology folder. Pass it with --data-dir")
    return CILSource(data_dir, "scored")


def open_source(data_dir: str | os.PathLike | None, image_size: int = FIELD_SIZE, seed: int = 0) -> CILSource:
    """The real labeled fields of the CIL folder `data_dir` (what generative models train on)."""
    if not data_dir:
        raise DataError("the cil dataset needs the CIL cosmology folder. Pass it with --data-dir")
    return CILSource(data_dir, "real")
