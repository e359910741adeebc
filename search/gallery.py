"""A gallery in memory: the vectors of every image of a dataset, their labels, and one FAISS index over them.

A distance is the mean squared difference per vector component, so the pixel distance is exactly the seed's
pixel MSE and the latent distance its "MSE in latent space". The index is exact up to EXACT_LIMIT vectors and an
HNSW graph beyond; `new_index` is the one place either is made (the sharded index builds its in-memory kinds
with it too). A gallery is saved as one .npz file, so later queries never touch the dataset's pixels again.

FAISS is imported where an index is made or read, so that evaluate.py's parser can offer KINDS and EXACT_LIMIT
on a machine without it.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import DataError
from core.files import write_atomic
from core.runs import RunFolder

if TYPE_CHECKING:
    import faiss

    from search.embedding import GallerySpec

KINDS = ("auto", "flat", "ivf-flat", "ivf-pq", "hnsw")     # the index kinds of `evaluate.py index --kind`
EXACT_LIMIT = 100_000          # more vectors than this get an approximate (HNSW) index
HNSW_LINKS = 32                # graph neighbours per vector: recall vs memory
HNSW_SEARCH_DEPTH = 128        # candidates kept while searching: recall vs speed


def check_k(k: int, gallery_size: int) -> None:
    if not 1 <= k <= gallery_size:
        raise DataError(f"--k must be between 1 and the {gallery_size} images in the gallery, got {k}. "
                        f"Use e.g. --k {min(10, gallery_size)}")


def new_index(dimension: int, kind: str = "flat") -> faiss.Index:
    """An empty FAISS index: `flat`, an exact L2 scan, or `hnsw`, a graph with sub-linear (approximate) queries."""
    import faiss

    if kind == "flat":
        return faiss.IndexFlatL2(dimension)
    index = faiss.IndexHNSWFlat(dimension, HNSW_LINKS)
    index.hnsw.efSearch = HNSW_SEARCH_DEPTH
    return index


def build_index(embeddings: np.ndarray, exact_limit: int = EXACT_LIMIT) -> faiss.Index:
    """An exact index of `embeddings`, or an HNSW graph past `exact_limit` vectors."""
    index = new_index(embeddings.shape[1], "flat" if len(embeddings) <= exact_limit else "hnsw")
    index.add(np.ascontiguousarray(embeddings, np.float32))
    return index


@dataclass
class Gallery:
    """Embeddings of a dataset's images, their FAISS index, labels, and what they were built from (`info`)."""

    embeddings: np.ndarray
    labels: np.ndarray
    info: dict
    index: faiss.Index = field(repr=False)

    @classmethod
    def build(cls, embeddings: np.ndarray, labels: np.ndarray, info: dict, exact_limit: int = EXACT_LIMIT):
        return cls(embeddings, labels, info, build_index(embeddings, exact_limit))

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, gallery rows), both (n_queries, k), nearest first; distance = mean squared difference."""
        check_k(k, len(self))
        squared, rows = self.index.search(np.ascontiguousarray(vectors, np.float32), k)
        return np.maximum(squared, 0) / self.embeddings.shape[1], rows

    def metadata(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """No per-row columns: a .npz gallery keeps only vectors and labels (its source has the metadata)."""
        return {}

    def vector(self, row: int) -> np.ndarray:
        """Gallery row `row`'s own vector, (1, dimensions): a gallery galaxy as a query, without embedding it."""
        return self.embeddings[row:row + 1]

    def save(self, path: str | Path) -> Path:
        """One .npz file: embeddings, labels, the serialised FAISS index and `info` as JSON."""
        import faiss

        def write(temporary: str) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, embeddings=self.embeddings, labels=self.labels,
                         index=faiss.serialize_index(self.index), info=np.array(json.dumps(self.info)))

        return write_atomic(path, write)

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """A gallery saved by `save`; a DataError for any other file (truncated, a plain .npy, bad metadata)."""
        import faiss

        try:
            with np.load(path, allow_pickle=False) as saved:
                info = json.loads(str(saved["info"]))
                gallery = cls(saved["embeddings"], saved["labels"], info, faiss.deserialize_index(saved["index"]))
            if not isinstance(info, dict) or gallery.embeddings.ndim != 2 or gallery.index.ntotal != len(gallery):
                raise ValueError("its metadata does not describe its vectors")
            return gallery
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, zipfile.BadZipFile) as error:
            raise DataError(f"index file {path} is not an index written by evaluate.py neighbours "
                            f"({type(error).__name__}). Delete it to rebuild it, or pass another --index") from None


def gallery_info(spec: GallerySpec, embedding: str, run_dir: str | Path | None) -> dict:
    """What a gallery depends on; a saved index is reused only when all of it matches."""
    info = {"embedding": embedding, **{f.name: getattr(spec, f.name) for f in fields(spec)},
            "run": None, "model_modified_ns": None}
    if run_dir is not None:
        folder = RunFolder(run_dir)
        info["run"] = os.path.realpath(folder.root)
        info["model_modified_ns"] = folder.saved_model().stat().st_mtime_ns
    return info
