"""Any prepared TFDS image dataset as a zoo source: `--dataset tfds:NAME[/CONFIG]` with `--data-dir` the TFDS data
folder (default ~/tensorflow_datasets), its `train` split, labels and class names from its features.

Datasets stored as array_record (the zoo's own builders) are read by index; others (TFRecord) are read in order,
which is how the pipeline reads a source, restarting only when a row before the last one read is asked for."""
from __future__ import annotations

import numpy as np

from core.errors import DataError
from datasets.source import Source

SPLIT = "train"


def open_tfds(spec: str, data_dir: str | None) -> Source:
    """The `train` split of the prepared TFDS dataset `spec` (NAME or NAME/CONFIG) in `data_dir`."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(spec, data_dir=data_dir)
    except Exception as error:      # noqa: BLE001 - TFDS raises DatasetNotFoundError, ValueError, KeyError ...
        reason = " ".join(str(error).split()).split(". ")[0]
        raise DataError(f"TFDS dataset '{spec}' is not prepared in {data_dir or 'the default TFDS folder'} "
                        f"({reason}). Prepare it first: python -m datasets.tfds build "
                        f"{spec.split('/')[0]} --manual_dir DOWNLOAD --data_dir DIR (the zoo's datasets), or "
                        "tfds build NAME, then pass --data-dir DIR") from None
    if not builder.is_prepared() or SPLIT not in builder.info.splits:
        raise DataError(f"TFDS dataset '{spec}' has no prepared '{SPLIT}' split in {builder.data_dir}. Prepare it "
                        f"with python -m datasets.tfds build {spec.split('/')[0]} --manual_dir DOWNLOAD")
    return TFDSSource(builder, spec)


class TFDSSource(Source):
    """The `train` split of a prepared TFDS builder whose features hold an `image` (and optionally a `label`)."""

    def __init__(self, builder, spec: str):
        features = builder.info.features
        if "image" not in features:
            raise DataError(f"TFDS dataset '{spec}' has no 'image' feature (it has {', '.join(features)}). "
                            "Use an image dataset")
        self.builder, self.name = builder, f"tfds:{spec}"
        self.channels = int(features["image"].shape[-1])
        label = features["label"] if "label" in features else None
        self.class_names = tuple(label.names) if hasattr(label, "names") else ()
        self.size = builder.info.splits[SPLIT].num_examples
        self.random_access = builder.info.file_format.value == "array_record"
        self._data_source = builder.as_data_source(split=SPLIT) if self.random_access else None
        self._iterator, self._position = None, 0
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.size

    def _examples(self, start: int, stop: int) -> list[dict]:
        if self.random_access:
            return [self._data_source[row] for row in range(start, stop)]
        if self._iterator is None or start < self._position:
            import tensorflow_datasets as tfds

            self._iterator = iter(tfds.as_numpy(self.builder.as_dataset(split=SPLIT, shuffle_files=False)))
            self._position = 0
        for _ in range(start - self._position):
            next(self._iterator)
        examples = [next(self._iterator) for _ in range(start, stop)]
        self._position = stop
        return examples

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = max(0, start), min(self.size, stop)
        examples = self._examples(start, stop) if stop > start else []
        images = np.stack([example["image"] for example in examples]) if examples else np.zeros((0, 1, 1, 1), np.uint8)
        return images, self.labels()[start:stop]

    def labels(self) -> np.ndarray:
        """The `label` of every example (read once, images skipped), -1 without a label feature."""
        if self._labels is None:
            if not self.class_names:
                self._labels = np.full(self.size, -1, np.int64)
            else:
                import tensorflow_datasets as tfds

                skip_images = {"image": tfds.decode.SkipDecoding()}
                if self.random_access:
                    undecoded = self.builder.as_data_source(split=SPLIT, decoders=skip_images)
                    labels = (undecoded[row]["label"] for row in range(self.size))
                else:
                    labels = tfds.as_numpy(self.builder.as_dataset(split=SPLIT, shuffle_files=False,
                                                                   decoders=skip_images).map(lambda e: e["label"]))
                self._labels = np.fromiter(labels, np.int64, count=self.size)
        return self._labels

    def describe(self, row: int) -> str:
        return f"example {row} of {self.name} ({self.builder.data_dir})"
