"""The contract every dataset source honours, so the pipeline never cares where pixels come from.

A source is a fixed-length, indexable collection of uint8 images (H, W, C) with integer labels
(-1 when unlabeled). It is read in contiguous blocks (`read(start, stop)`) so that large files stream
chunk by chunk instead of landing in memory at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Source:
    """Base class for dataset sources.

    Subclasses set `name`, `class_names` (empty tuple when unlabeled) and `channels`, and implement
    `__len__`, `read` and `labels`. `metadata` is optional (ra/dec and the like, for neighbour tables).
    """

    name: str = ""
    class_names: tuple[str, ...] = ()
    channels: int = 3

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, start: int, stop: int) -> tuple[Sequence[np.ndarray], np.ndarray]:
        """Images start..stop-1 (uint8, H x W x C each; a stacked array when sizes agree) and labels."""
        raise NotImplementedError

    def labels(self) -> np.ndarray:
        """All labels as int64, cheaply (without decoding images): used to filter classes and split."""
        raise NotImplementedError

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image columns such as ra, dec, redshift for the given indices; empty when none."""
        return {}

    def describe(self, row: int) -> str:
        """Where row `row` comes from, for error messages: the file when the source has one per row or in all."""
        return f"row {row} of dataset '{self.name}'"

    @property
    def labeled(self) -> bool:
        return bool(self.class_names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, classes={len(self.class_names)})"


class Subset(Source):
    """A view on some rows of another source, with labels optionally remapped (for --classes/--limit)."""

    def __init__(self, base: Source, indices: np.ndarray, class_names: tuple[str, ...] | None = None,
                 label_map: dict[int, int] | None = None):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = base.name
        self.channels = base.channels
        self.class_names = base.class_names if class_names is None else class_names
        self._label_map = label_map

    def __len__(self) -> int:
        return len(self.indices)

    def _map(self, labels: np.ndarray) -> np.ndarray:
        if self._label_map is None:
            return labels
        return np.array([self._label_map[int(v)] for v in labels], dtype=np.int64)

    def labels(self) -> np.ndarray:
        return self._map(self.base.labels()[self.indices])

    def read(self, start: int, stop: int, max_span: int = 512) -> tuple[list[np.ndarray], np.ndarray]:
        """Reads the wanted rows from the base source in spans of at most `max_span` rows, each at least half
        made of wanted rows: a dense split reads few large blocks, a sparse one (a validation split of rendered
        fields) does not read ten rows to keep one."""
        wanted = self.indices[start:stop]
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        i = 0
        while i < len(wanted):
            j = i + 1
            while j < len(wanted) and wanted[j] - wanted[i] < max_span and wanted[j] - wanted[i] < 2 * (j - i + 1):
                j += 1
            block, block_labels = self.base.read(int(wanted[i]), int(wanted[j - 1]) + 1)
            offsets = wanted[i:j] - wanted[i]
            images.extend(block[k] for k in offsets)
            labels.append(np.asarray(block_labels)[offsets])
            i = j
        return images, self._map(np.concatenate(labels) if labels else np.zeros(0, np.int64))

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.base.metadata(self.indices[np.asarray(indices)])

    def describe(self, row: int) -> str:
        return self.base.describe(int(self.indices[row]))


class ArraySource(Source):
    """Images already in memory (uint8, N x H x W x C), e.g. a query image or test data."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, class_names: tuple[str, ...] = (),
                 name: str = "array"):
        self.images = images
        self._labels = np.full(len(images), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        self.name, self.class_names, self.channels = name, tuple(class_names), images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[start:stop], self._labels[start:stop]

    def labels(self) -> np.ndarray:
        return self._labels
