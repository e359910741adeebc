"""cil_cosmology: 1000×1000 grayscale star fields of the ETH Computational Intelligence Lab cosmology project."""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from core.worlds import FIELD_SIZE
from datasets.cil import CILSource

READ_FIELDS = 16


class Builder(tfds.core.GeneratorBasedBuilder):
    """The CIL folder as three splits, as the course hands it out: `labeled` (real or fake), `scored` (a
    similarity score 0-8) and `query` (neither); label is -1 and score NaN where a split has none."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: the labeled, scored and query folders as splits."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Get the cosmology folder of the ETH CIL course (labeled/, scored/, query/, labeled.csv, scored.csv) and "
        "pass it as --manual_dir, e.g. `python -m datasets.tfds build cil_cosmology --manual_dir cosmology/`. "
        "`python -m datasets.star_fields --write DIR` writes a rendered folder of the same layout.")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(FIELD_SIZE, FIELD_SIZE, 1)),
                "label": tfds.features.Scalar(np.int64, doc="1 real, 0 fake, -1 not labeled"),
                "score": tfds.features.Scalar(np.float32, doc="similarity to the real fields, 0-8; NaN if none"),
                "id": tfds.features.Scalar(np.int64, doc="the file name's number"),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        return {split: self._generate_examples(CILSource(dl_manager.manual_dir, split))
                for split in ("labeled", "scored", "query")}

    def _generate_examples(self, source: CILSource):
        for start in range(0, len(source), READ_FIELDS):
            images, labels = source.read(start, start + READ_FIELDS)
            rows = np.arange(start, start + len(images))
            columns = source.metadata(rows)
            for k, identifier in enumerate(columns["id"]):
                score = columns["score"][k] if "score" in columns else np.nan
                yield int(identifier), {"image": images[k], "label": int(labels[k]), "score": np.float32(score),
                                        "id": int(identifier)}
