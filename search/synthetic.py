"""Synthetic vector galleries, to test and benchmark indexes without embedding a single image, written as the
Parquet shards of `evaluate.py embed` with fresh queries drawn the same way and their exact neighbours, found
by scanning the shards one at a time.

Two galleries: `isotropic`, clustered vectors (a Gaussian mixture of unit-spread clusters whose centres are as
far apart as their members are from them: every dimension matters, a hard case for an index), and `encoder`,
drawn from a model of the shipped encoder's vectors (ENCODER_MIXTURE, fitted by `fit_encoder_mixture`): their
leading principal components, the first few a Gaussian mixture with full covariances, the rest independent
normals, so that most of the variance lies in a few directions as in real embeddings.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.files import write_json

# search.shards (TensorFlow's data pipeline) and FAISS are imported where they are used: evaluate.py's parser reads
# GALLERIES on machines that have neither.
GALLERIES = ("isotropic", "encoder")
ENCODER_MIXTURE = Path(__file__).with_name("encoder_mixture.npz")
CLUSTER_SIZE = 1_000
QUERIES = 1_000
SHARD_ROWS = 100_000
K = 10

Draw = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def clustered(centers: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n vectors around random centers (unit spread, as far apart as the centers' own spread) and their cluster."""
    labels = rng.integers(0, len(centers), n)
    return centers[labels] + rng.standard_normal((n, centers.shape[1]), dtype=np.float32), labels


def fit_encoder_mixture(vectors: np.ndarray, dimension: int = 64, mixed: int = 16, components: int = 32,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """A model of `vectors` (n, d): their `dimension` leading principal components, the first `mixed` a Gaussian
    mixture of `components` full-covariance components (weights, means, Cholesky factors), the others independent
    normals (their standard deviations, `spread`). `explained`: the variance share of every principal component."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    pca = PCA(random_state=seed).fit(vectors)
    projected = pca.transform(vectors)[:, :dimension]
    mixture = GaussianMixture(components, covariance_type="full", random_state=seed).fit(projected[:, :mixed])
    return {"weights": mixture.weights_.astype(np.float32), "means": mixture.means_.astype(np.float32),
            "cholesky": np.linalg.cholesky(mixture.covariances_).astype(np.float32),
            "spread": projected[:, mixed:].std(0).astype(np.float32),
            "explained": pca.explained_variance_ratio_.astype(np.float32)}


def encoder_vectors(mixture: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n vectors drawn from a fitted encoder mixture, and the mixture component of each."""
    weights = mixture["weights"].astype(np.float64)
    component = rng.choice(len(weights), n, p=weights / weights.sum())
    noise = rng.standard_normal((n, mixture["means"].shape[1]), dtype=np.float32)
    head = mixture["means"][component] + np.einsum("nij,nj->ni", mixture["cholesky"][component], noise)
    tail = rng.standard_normal((n, len(mixture["spread"])), dtype=np.float32) * mixture["spread"]
    return np.concatenate([head, tail], axis=1), component


def gallery_draw(gallery: str, n: int, dimension: int, rng: np.random.Generator,
                 cluster_size: int = CLUSTER_SIZE) -> tuple[Draw, int]:
    """How a gallery of n vectors draws vectors (a function of count and generator) and their dimension: isotropic
    clusters of `dimension`, or the encoder mixture's own dimension."""
    if gallery == "isotropic":
        centers = rng.standard_normal((max(1, n // cluster_size), dimension), dtype=np.float32)
        return (lambda count, draw_rng: clustered(centers, count, draw_rng)), dimension
    if gallery == "encoder":
        mixture = dict(np.load(ENCODER_MIXTURE))
        return (lambda count, draw_rng: encoder_vectors(mixture, count, draw_rng)), \
            mixture["means"].shape[1] + len(mixture["spread"])
    raise DataError(f"unknown synthetic gallery '{gallery}'. Choose one of: {', '.join(GALLERIES)}")


def write_synthetic(folder: Path, n: int, dimension: int, seed: int = 0, shard_rows: int = SHARD_ROWS,
                    cluster_size: int = CLUSTER_SIZE, gallery: str = "isotropic") -> int:
    """Shards of n vectors of `gallery` as `evaluate.py embed` writes them, and QUERIES fresh queries (queries.npy);
    returns their dimension (`dimension` for isotropic galleries, the mixture's for encoder ones)."""
    from search.shards import MANIFEST, shard_path, vectors_table, write_shard

    rng = np.random.default_rng(seed)
    draw, dimension = gallery_draw(gallery, n, dimension, rng, cluster_size)
    shards = -(-n // shard_rows)
    for shard in range(shards):
        start = shard * shard_rows
        vectors, labels = draw(min(shard_rows, n - start), rng)
        rows = np.arange(start, start + len(vectors))
        write_shard(shard_path(folder, shard), vectors_table({"row": rows, "dataset_index": rows, "label": labels},
                                                             vectors))
    write_json(folder / MANIFEST, {"embedding": f"synthetic-{gallery}", "n": n, "shard_rows": shard_rows,
                                   "shards": shards})
    np.save(folder / "queries.npy", draw(QUERIES, rng)[0])
    return dimension


def exact_neighbours(folder: Path, queries: np.ndarray, k: int = K) -> np.ndarray:
    """The exact k nearest rows of every query, one shard in memory at a time."""
    import faiss

    from search.shards import open_embeddings, read_columns, shard_vectors

    heap = faiss.ResultHeap(len(queries), k)
    for _, table in read_columns(open_embeddings(folder)[1], ["row", "embedding"]):
        shard = faiss.IndexFlatL2(queries.shape[1])
        shard.add(shard_vectors(table))
        distances, found = shard.search(queries, k)
        heap.add_result(distances, np.where(found >= 0, table.column("row").to_numpy()[found], -1))
    heap.finalize()
    return heap.I
