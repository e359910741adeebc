"""Galaxy10 HDF5 files (DECals `Galaxy10_DECals.h5` or SDSS `Galaxy10.h5` from astroNN), streamed from disk.

The DECals file is 2.5 GB, so images are never loaded whole: the HDF5 file stays open and `read` pulls
just the requested slice. Everything that can be wrong with a downloaded file (missing, not HDF5,
truncated, unexpected keys, shapes or labels) is checked when the source is opened, so a bad file stops
the run before training starts. Both variants share the name "galaxy10"; `variant` tells them apart by
image size (69×69 is SDSS).
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import h5py
import numpy as np

from core.errors import DataError
from datasets.source import Source

DECALS_FILE = "Galaxy10_DECals.h5"
SDSS_FILE = "Galaxy10.h5"
DOWNLOAD_HINT = ("Download Galaxy10_DECals.h5 or Galaxy10.h5 "
                 "(see https://astronn.readthedocs.io/en/latest/galaxy10.html)")

DECALS_CLASSES = (
    "Disturbed", "Merging", "Round Smooth", "In-between Round Smooth", "Cigar Shaped Smooth",
    "Barred Spiral", "Unbarred Tight Spiral", "Unbarred Loose Spiral", "Edge-on without Bulge",
    "Edge-on with Bulge",
)
SDSS_CLASSES = (
    "Disk, Face-on, No Spiral", "Smooth, Completely round", "Smooth, in-between round", "Smooth, Cigar shaped",
    "Disk, Edge-on, Rounded Bulge", "Disk, Edge-on, Boxy Bulge", "Disk, Edge-on, No Bulge",
    "Disk, Face-on, Tight Spiral", "Disk, Face-on, Medium Spiral", "Disk, Face-on, Loose Spiral",
)
SDSS_IMAGE_SIZE = 69
METADATA_KEYS = ("ra", "dec", "redshift", "pxscale")
EXPORT_FORMATS = ("png", "jpg")
EXPORT_ROWS = 256            # images read from the HDF5 file at once while exporting


def resolve_path(data_dir: str | os.PathLike) -> Path:
    """The .h5 file `data_dir` names, or the single Galaxy10 file inside the folder `data_dir`."""
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"Galaxy10 file {path} does not exist. {DOWNLOAD_HINT} and pass its path with --data-dir")
    if not path.is_dir():
        return path
    found = [path / name for name in (DECALS_FILE, SDSS_FILE) if (path / name).is_file()]
    if not found:
        raise DataError(f"folder {path} holds neither {DECALS_FILE} nor {SDSS_FILE}. {DOWNLOAD_HINT} into it "
                        "or pass the file's path with --data-dir")
    if len(found) > 1:
        raise DataError(f"folder {path} holds both {DECALS_FILE} and {SDSS_FILE}. "
                        "Pass the path of the one to use with --data-dir")
    return found[0]


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


class Galaxy10(Source):
    """One Galaxy10 file: images (N, H, W, 3) uint8 read lazily, labels `ans` 0-9, optional ra/dec/redshift/pxscale."""

    name = "galaxy10"
    channels = 3

    def __init__(self, path: str | os.PathLike, path_flag: str = "--data-dir"):
        """`path_flag`: the option that gave the path, named when the file is not Galaxy10."""
        self.path = Path(path)
        self.path_flag = path_flag
        self._file: h5py.File | None = None
        self._file_pid: int | None = None
        self._metadata: dict[str, np.ndarray] | None = None
        self._labels, self.image_shape = self._validate()
        self.variant = "sdss" if self.image_shape[:2] == (SDSS_IMAGE_SIZE, SDSS_IMAGE_SIZE) else "decals"
        self.class_names = SDSS_CLASSES if self.variant == "sdss" else DECALS_CLASSES

    def describe(self, row: int) -> str:
        return f"image {row} of {self.path}"

    def _validate(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Checks format, keys, dtypes, shapes and labels; returns the labels (int64) and the image shape."""
        if not h5py.is_hdf5(self.path):
            raise DataError(f"{self.path} is not an HDF5 file. {DOWNLOAD_HINT} and pass its path with {self.path_flag}")
        try:
            h5 = self._open()
        except OSError as error:
            raise DataError(f"{self.path} is truncated or corrupt ({_one_line(error)}). Download it again") from error
        for key in ("images", "ans"):
            if not isinstance(h5.get(key), h5py.Dataset):
                raise DataError(f"{self.path} has no dataset '{key}' (keys present: {', '.join(h5.keys()) or 'none'}). "
                                f"Use an unmodified {DECALS_FILE} or {SDSS_FILE}")
        images, answers = h5["images"], h5["ans"]
        if images.dtype != np.uint8:
            raise DataError(f"'images' in {self.path} has dtype {images.dtype}, expected uint8. "
                            f"Use an unmodified {DECALS_FILE} or {SDSS_FILE}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"'images' in {self.path} has shape {images.shape}, expected (N, height, width, 3). "
                            f"Use an unmodified {DECALS_FILE} or {SDSS_FILE}")
        if answers.shape != (len(images),):
            found = f"{answers.shape[0]} labels" if answers.ndim == 1 else f"shape {answers.shape}"
            raise DataError(f"{self.path} has {len(images)} images but 'ans' has {found}. "
                            f"Use an unmodified {DECALS_FILE} or {SDSS_FILE}")
        if len(images) == 0:
            raise DataError(f"{self.path} holds zero images. {DOWNLOAD_HINT} again")
        try:  # reading both ends and all labels catches files cut short
            for row in (0, len(images) - 1):
                images[row]
            values = answers[()]
        except OSError as error:
            raise DataError(f"{self.path} is truncated or corrupt ({_one_line(error)}). Download it again") from error
        bad = np.flatnonzero(~np.isin(values, np.arange(len(DECALS_CLASSES))))
        if len(bad):
            raise DataError(f"'ans' in {self.path} has label {values[bad[0]]} at index {bad[0]} "
                            f"({len(bad)} labels outside 0-9). Use an unmodified {DECALS_FILE} or {SDSS_FILE}")
        return values.astype(np.int64), images.shape[1:]

    def _open(self) -> h5py.File:
        """The open HDF5 file, (re)opened when closed or when this is a forked process."""
        if self._file is None or not self._file.id.valid or self._file_pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._file_pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Closes the HDF5 file; the next read reopens it."""
        if self._file is not None and self._file.id.valid:
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict:
        """Pickles without the open file handle (h5py files cannot be pickled); it reopens on first read."""
        return {**self.__dict__, "_file": None, "_file_pid": None}

    def __len__(self) -> int:
        return len(self._labels)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Images start..stop-1 as one (k, H, W, 3) uint8 array, read from disk, and their labels. A damaged chunk
        raises h5py's OSError, which the pipeline (datasets.pipeline.read_rows) turns into an error naming the row."""
        return self._open()["images"][start:stop], self._labels[start:stop]

    def labels(self) -> np.ndarray:
        return self._labels

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """ra, dec, redshift, pxscale (those the file has) for `indices`, in the order given."""
        if self._metadata is None:
            h5 = self._open()
            self._metadata = {key: h5[key][()].astype(np.float64) for key in METADATA_KEYS
                              if isinstance(h5.get(key), h5py.Dataset) and h5[key].shape == (len(self),)}
        indices = np.asarray(indices, dtype=np.int64)
        return {key: column[indices] for key, column in self._metadata.items()}


def open_source(data_dir: str | os.PathLike | None, image_size: int = 64, seed: int = 0) -> Galaxy10:
    """Opens and checks the Galaxy10 file at `data_dir` (a .h5 file or a folder holding one).

    `image_size` and `seed` are unused: images keep their stored size and order; the pipeline resizes.
    """
    if not data_dir:
        raise DataError(f"galaxy10 needs the path of {DECALS_FILE} or {SDSS_FILE}. Pass it with --data-dir")
    return Galaxy10(resolve_path(data_dir))


def class_folder(label: int, class_names: tuple[str, ...]) -> str:
    """The sub-folder of a class in an export: its number first, so the folder source sorts classes as Galaxy10
    numbers them, then its name in lower case with underscores (`05_barred_spiral`)."""
    return f"{label:02d}_" + re.sub(r"[^a-z0-9]+", "_", class_names[label].lower()).strip("_")


def export(source: Galaxy10, folder: str | os.PathLike, image_format: str = "png", progress: bool = True) -> Path:
    """Writes every image of `source` into `folder` as one file per galaxy under its class sub-folder
    (`class_folder`), and galaxies.csv (index, label, class, path, and ra/dec/redshift/pxscale when the file has
    them). Streamed EXPORT_ROWS images at a time; each file is written whole or not at all, and images already
    there are kept, so an interrupted export resumes where it stopped. The folder reads back with
    `--dataset folder --data-dir FOLDER`."""
    from tqdm import tqdm

    from core.files import write_atomic, write_png
    from datasets.pipeline import read_rows

    if image_format not in EXPORT_FORMATS:
        raise DataError(f"unknown export format '{image_format}'. Use one of: {', '.join(EXPORT_FORMATS)}")
    folder = Path(folder)
    labels = source.labels()
    paths = [f"{class_folder(int(label), source.class_names)}/{row:05d}.{image_format}"
             for row, label in enumerate(labels)]
    with tqdm(total=len(source), unit="img", desc=f"exporting {source.path.name}", disable=not progress) as bar:
        for start in range(0, len(source), EXPORT_ROWS):
            todo = [row for row in range(start, min(start + EXPORT_ROWS, len(source)))
                    if not (folder / paths[row]).exists()]
            if todo:
                images, _ = read_rows(source, todo[0], todo[-1] + 1, "Download the file again; the export "
                                      "resumes where it stopped")
                for row in todo:
                    write_png(folder / paths[row], images[row - todo[0]])
            bar.update(min(EXPORT_ROWS, len(source) - start))
    columns = source.metadata(np.arange(len(source)))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["index", "label", "class", "path", *columns])
    for row, label in enumerate(labels):
        writer.writerow([row, int(label), source.class_names[label], paths[row],
                         *(f"{column[row]:.8g}" for column in columns.values())])
    write_atomic(folder / "galaxies.csv", lambda temporary: Path(temporary).write_text(table.getvalue()))
    return folder
