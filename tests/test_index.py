"""evaluate.py index: the sharded IVF index (Ray tasks, lists merged on disk) finds what exact search finds, its
parameters follow the gallery's size, and load_index opens folders and .npz files alike."""
import json

import faiss
import numpy as np
import pytest

from core.errors import DataError
from evaluation.benchmark.search import exact_neighbours, write_synthetic
from evaluation.index import ShardedIndex, build_sharded_index, index_parameters, load_index
from evaluation.neighbours import Gallery

N, D, K = 2400, 16, 10


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    """2,400 clustered 16-d vectors in 6 shards of 400, as evaluate.py embed writes them."""
    folder = tmp_path_factory.mktemp("emb")
    write_synthetic(folder, N, D, shard_rows=400, cluster_size=100)
    return folder


def all_vectors(folder):
    from evaluation.embed import open_embeddings, shard_vectors
    from evaluation.index import read_columns

    shards = open_embeddings(folder)[1]
    return np.concatenate([shard_vectors(table) for _, table in read_columns(shards, ["embedding"])])


def exact(vectors, queries):
    index = faiss.IndexFlatL2(D)
    index.add(vectors)
    return index.search(queries, K)


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-pq"])
def test_the_sharded_index_finds_the_exact_neighbours(local_ray, embeddings, tmp_path, kind):
    info = build_sharded_index(embeddings, tmp_path / "idx", kind, exact_limit=100)
    assert (info["kind"], info["nlist"], info["nprobe"], info["n"]) == (kind, 64, 16, N)
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(
        ["index.json", "index.faiss", "lists.ivfdata", "labels.npy", "rows.parquet"]
        + (["vectors.npy"] if kind == "ivf-pq" else []))
    index = load_index(tmp_path / "idx")
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.index).invlists),
                      faiss.OnDiskInvertedLists)
    queries = np.load(embeddings / "queries.npy")[:200]
    distances, rows = index.search(queries, K)
    exact_squared, exact_rows = exact(all_vectors(embeddings), queries)
    np.testing.assert_array_equal(exact_neighbours(embeddings, queries), exact_rows)  # the benchmark's ground truth
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, exact_rows)])
    assert recall >= 0.95
    found = rows[:, 0] == exact_rows[:, 0]
    np.testing.assert_allclose(distances[found, 0], exact_squared[found, 0] / D, rtol=1e-4)  # exact after re-ranking
    assert len(index) == N and json.loads((tmp_path / "idx" / "index.json").read_text())["nprobe"] == 16
    import pyarrow.parquet as pq

    written = [pq.read_table(path, columns=["label"]).column("label").to_numpy()
               for path in sorted(embeddings.glob("shard-*.parquet"))]
    np.testing.assert_array_equal(index.labels, np.concatenate(written))     # every row's cluster, as written
    assert index.labels.dtype == np.int64 and len(np.unique(index.labels)) == N // 100
    assert list(index.metadata(rows[0][:3])) == ["dataset_index"]
    np.testing.assert_array_equal(index.metadata(rows[0][:3])["dataset_index"], rows[0][:3])
    if kind == "ivf-flat":      # a gallery galaxy's query reads its vector back from the lists
        np.testing.assert_array_equal(index.vector(1234), all_vectors(embeddings)[1234:1235])


def test_small_galleries_are_exact_and_npz_galleries_load_the_same_way(embeddings, tmp_path):
    info = build_sharded_index(embeddings, tmp_path / "idx")
    assert info["kind"] == "flat" and "nlist" not in info
    queries = np.load(embeddings / "queries.npy")[:20]
    vectors = all_vectors(embeddings)
    np.testing.assert_array_equal(load_index(tmp_path / "idx").search(queries, K)[1], exact(vectors, queries)[1])
    gallery = Gallery.build(vectors, np.zeros(N, np.int64), {"embedding": "latent"})
    loaded = load_index(gallery.save(tmp_path / "gallery.npz"))
    assert isinstance(loaded, Gallery) and loaded.metadata(np.arange(3)) == {}
    np.testing.assert_array_equal(loaded.search(queries, K)[1], exact(vectors, queries)[1])


def test_parameters_grow_with_the_gallery():
    assert index_parameters(50_000, 64) == {"kind": "flat"}
    assert index_parameters(1_000_000, 64) == {"kind": "ivf-flat", "nlist": 1024, "nprobe": 32, "train_size": 65_536}
    assert index_parameters(10_000_000, 64) == {"kind": "ivf-pq", "nlist": 4096, "nprobe": 256,
                                                "train_size": 262_144, "pq_bytes": 16, "rerank": 8}
    assert index_parameters(10_000_000, 64, "ivf-flat")["nprobe"] == 64
    assert index_parameters(10_000_000, 12, "ivf-pq", rerank=False)["pq_bytes"] == 3
    assert index_parameters(1_000_000, 12, "hnsw")["links"] == 32


def test_folders_that_are_no_index_or_no_finished_embedding_are_refused(embeddings, tmp_path):
    with pytest.raises(DataError, match=r"is not an index folder written by evaluate.py index \(FileNotFoundError\)"):
        ShardedIndex(tmp_path)
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "stray.txt").write_text("x")
    with pytest.raises(DataError, match=r"idx already exists. Delete it to rebuild the index"):
        build_sharded_index(embeddings, tmp_path / "idx")
