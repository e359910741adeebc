"""What the zoo's TFDS builders share: finding the user's file in --manual_dir, the fixed train/test split, and
the Galaxy10 builder that the DECals and SDSS variants configure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from core.errors import DataError
from datasets.galaxy10 import DECALS_CLASSES, METADATA_KEYS, Galaxy10

SPLIT_SEED = 20260101        # the seed of every builder's fixed train/test split
TEST_FRACTION = 0.1
ROWS_PER_READ = 64           # images read from the HDF5 file at once while generating


def manual_file(manual_dir, names: tuple[str, ...]) -> Path:
    """The user's download: the one of `names` inside `manual_dir`."""
    path = Path(manual_dir)
    found = [path / name for name in names if (path / name).exists()]
    if not found:
        raise DataError(f"{path} holds none of {', '.join(names)}. Download it and pass its folder or the file "
                        "with --manual_dir")
    return found[0]


def held_out_rows(n: int) -> np.ndarray:
    """A boolean mask of the rows in the test split: TEST_FRACTION of them, drawn with SPLIT_SEED."""
    is_test = np.zeros(n, bool)
    is_test[np.random.default_rng(SPLIT_SEED).permutation(n)[:max(1, round(n * TEST_FRACTION))]] = True
    return is_test


class Galaxy10Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Galaxy10 (astroNN) from the user's HDF5 file, streamed ROWS_PER_READ images at a time: image, label (the
    10 classes), ra, dec, redshift and pxscale (NaN where the file has no such column) and the row in the file."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: train/test split of 90/10 % drawn with seed 20260101."}
    FILE_NAME = ""
    IMAGE_SIZE = 0
    CLASS_NAMES = DECALS_CLASSES

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(self.IMAGE_SIZE, self.IMAGE_SIZE, 3)),
                "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
                **{key: tfds.features.Scalar(np.float32) for key in METADATA_KEYS},
                "index": tfds.features.Scalar(np.int64),
            }),
            supervised_keys=("image", "label"),
            homepage="https://astronn.readthedocs.io/en/latest/galaxy10.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        source = Galaxy10(manual_file(dl_manager.manual_dir, (self.FILE_NAME,)), path_flag="--manual_dir")
        if source.image_shape[0] != self.IMAGE_SIZE:
            raise DataError(f"{source.path} holds {source.image_shape[0]} px images, not the {self.IMAGE_SIZE} px of "
                            f"{self.FILE_NAME}. Pass the right file with --manual_dir")
        is_test = held_out_rows(len(source))
        return {"train": self._generate_examples(source, np.flatnonzero(~is_test)),
                "test": self._generate_examples(source, np.flatnonzero(is_test))}

    def _generate_examples(self, source: Galaxy10, rows: np.ndarray):
        for start in range(0, len(rows), ROWS_PER_READ):
            chunk = rows[start:start + ROWS_PER_READ]
            images, labels = source.read(int(chunk[0]), int(chunk[-1]) + 1)
            columns = source.metadata(chunk)
            for k, row in enumerate(chunk):
                yield int(row), {
                    "image": images[row - chunk[0]], "label": int(labels[row - chunk[0]]), "index": int(row),
                    **{key: np.float32(columns[key][k]) if key in columns else np.float32("nan")
                       for key in METADATA_KEYS},
                }
