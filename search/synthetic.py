"""Synthetic vector galleries, to test and benchmark indexes without embedding a single image: clustered vectors
(a Gaussian mixture) written as the Parquet shards of `evaluate.py embed`, fresh queries drawn from the same
clusters, and their exact neighbours, found by scanning the shards one at a time.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from core.files import write_json
from search.shards import MANIFEST, open_embeddings, read_columns, shard_path, shard_vectors, vectors_table, write_shard

CLUSTER_SIZE = 1_000
QUERIES = 1_000
SHARD_ROWS = 100_000
K = 10


def clustered(centers: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n vectors around random centers (unit spread, as far apart as the centers' own spread) and their cluster."""
    labels = rng.integers(0, len(centers), n)
    return centers[labels] + rng.standard_normal((n, centers.shape[1]), dtype=np.float32), labels


def write_synthetic(folder: Path, n: int, dimension: int, seed: int = 0, shard_rows: int = SHARD_ROWS,
                    cluster_size: int = CLUSTER_SIZE) -> None:
    """Shards of n clustered vectors as `evaluate.py embed` writes them, and QUERIES fresh queries (queries.npy)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, n // cluster_size), dimension), dtype=np.float32)
    shards = -(-n // shard_rows)
    for shard in range(shards):
        start = shard * shard_rows
        vectors, labels = clustered(centers, min(shard_rows, n - start), rng)
        rows = np.arange(start, start + len(vectors))
        write_shard(shard_path(folder, shard), vectors_table({"row": rows, "dataset_index": rows, "label": labels},
                                                             vectors))
    write_json(folder / MANIFEST, {"embedding": "synthetic", "n": n, "shard_rows": shard_rows, "shards": shards})
    np.save(folder / "queries.npy", clustered(centers, QUERIES, rng)[0])


def exact_neighbours(folder: Path, queries: np.ndarray, k: int = K) -> np.ndarray:
    """The exact k nearest rows of every query, one shard in memory at a time."""
    heap = faiss.ResultHeap(len(queries), k)
    for _, table in read_columns(open_embeddings(folder)[1], ["row", "embedding"]):
        shard = faiss.IndexFlatL2(queries.shape[1])
        shard.add(shard_vectors(table))
        distances, found = shard.search(queries, k)
        heap.add_result(distances, np.where(found >= 0, table.column("row").to_numpy()[found], -1))
    heap.finalize()
    return heap.I
