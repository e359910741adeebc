"""evaluate.py index: the sharded IVF index (Ray tasks, lists merged on disk or, fast-scan PQ, in memory) finds
what exact search finds, its parameters follow the gallery's size, ivf-pq's nprobe is the one that reaches its
recall target on held-out vectors, folders of the on-disk ivf-pq before it still load, load_index opens folders and .npz files alike, and a damaged index or
embeddings folder stops the command with one line naming the file and what to do."""
import json
import shutil

import cv2
import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

import evaluate
from core.errors import DataError
from search.gallery import Gallery
from search.index import ShardedIndex, build_sharded_index, index_parameters, load_index
from search.shards import vectors_table
from search.synthetic import exact_neighbours, write_synthetic

N, D, K = 2400, 16, 10


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    """2,400 clustered 16-d vectors in 6 shards of 400, as evaluate.py embed writes them."""
    folder = tmp_path_factory.mktemp("emb")
    write_synthetic(folder, N, D, shard_rows=400, cluster_size=100)
    return folder


def all_vectors(folder):
    from search.shards import open_embeddings, read_columns, shard_vectors

    shards = open_embeddings(folder)[1]
    return np.concatenate([shard_vectors(table) for _, table in read_columns(shards, ["embedding"])])


def exact(vectors, queries):
    index = faiss.IndexFlatL2(D)
    index.add(vectors)
    return index.search(queries, K)


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-pq"])
def test_the_sharded_index_finds_the_exact_neighbours(local_ray, embeddings, tmp_path, kind, monkeypatch):
    monkeypatch.setattr("search.index.PART_ROWS", 800)     # three Ray parts to merge, and three blocks to scan
    info = build_sharded_index(embeddings, tmp_path / "idx", kind, exact_limit=100)
    assert (info["kind"], info["nlist"], info["n"]) == (kind, 64, N)
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(
        ["index.json", "index.faiss", "labels.npy", "rows.parquet"]
        + (["vectors.npy"] if kind == "ivf-pq" else ["lists.ivfdata"]))
    index = load_index(tmp_path / "idx")
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.index).invlists),
                      faiss.BlockInvertedLists if kind == "ivf-pq" else faiss.OnDiskInvertedLists)
    if kind == "ivf-pq":    # nprobe measured on 500 gallery vectors: the first that reaches the target
        assert info["nprobe"] < 64 and info["held_out"] == 500 and info["held_out_recall"] >= info["recall_target"]
        assert isinstance(index.index, faiss.IndexIVFPQFastScan)
    queries = np.load(embeddings / "queries.npy")[:200]
    distances, rows = index.search(queries, K)
    exact_squared, exact_rows = exact(all_vectors(embeddings), queries)
    np.testing.assert_array_equal(exact_neighbours(embeddings, queries), exact_rows)  # the benchmark's ground truth
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, exact_rows)])
    assert recall >= 0.95
    found = rows[:, 0] == exact_rows[:, 0]
    np.testing.assert_allclose(distances[found, 0], exact_squared[found, 0] / D, rtol=1e-4)  # exact after re-ranking
    assert len(index) == N and faiss.extract_index_ivf(index.index).nprobe == (info["nprobe"] if kind == "ivf-pq"
                                                                                else 16)
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
    assert index_parameters(10_000_000, 64) == {
        "kind": "ivf-pq", "nlist": 4096, "nprobe": 256, "train_size": 262_144, "pq": "32x4fs", "lists": "memory",
        "rerank": 32, "recall_target": 0.96}
    assert index_parameters(10_000_000, 64, "ivf-flat")["nprobe"] == 64
    assert index_parameters(10_000_000, 12, "ivf-pq", rerank=False) == {
        "kind": "ivf-pq", "nlist": 4096, "nprobe": 256, "train_size": 262_144, "pq": "6x4fs", "lists": "memory",
        "rerank": 0}
    assert index_parameters(1_000_000, 12, "hnsw")["links"] == 32


def test_folders_that_are_no_index_or_no_finished_embedding_are_refused(embeddings, tmp_path):
    with pytest.raises(DataError, match=r"is not an index folder written by evaluate.py index \(FileNotFoundError\)"):
        ShardedIndex(tmp_path)
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "stray.txt").write_text("x")
    with pytest.raises(DataError, match=r"idx already exists. Delete it to rebuild the index"):
        build_sharded_index(embeddings, tmp_path / "idx")


def test_an_ivf_pq_folder_with_on_disk_lists_still_loads_and_re_ranks(built, embeddings, tmp_path):
    """The ivf-pq folder written before fast-scan: 8-bit PQ codes in lists.ivfdata, index.json without "lists"."""
    from faiss.contrib.ondisk import merge_ondisk

    idx = shutil.copytree(built / "ivf-pq", tmp_path / "idx")
    vectors = all_vectors(embeddings)
    index = faiss.index_factory(D, "IVF64,PQ4np")
    index.train(vectors)
    part = faiss.deserialize_index(faiss.serialize_index(index))
    part.add(vectors)
    faiss.write_index(part, str(tmp_path / "part.index"))
    merge_ondisk(index, [str(tmp_path / "part.index")], str(idx / "lists.ivfdata"))
    faiss.write_index(index, str(idx / "index.faiss"))
    info = json.loads((idx / "index.json").read_text())
    info = {key: value for key, value in info.items() if key not in ("lists", "pq", "recall_target")}
    (idx / "index.json").write_text(json.dumps({**info, "nprobe": 16, "pq_bytes": 4, "rerank": 8}))
    loaded = load_index(idx)
    assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(loaded.index).invlists),
                      faiss.OnDiskInvertedLists) and faiss.extract_index_ivf(loaded.index).nprobe == 16
    queries = np.load(embeddings / "queries.npy")[:100]
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(loaded.search(queries, K)[1],
                                                                exact(vectors, queries)[1])])
    assert recall >= 0.95
    (idx / "lists.ivfdata").unlink()
    with pytest.raises(DataError, match="has no lists.ivfdata"):
        load_index(idx)


# A damaged index folder or embeddings folder stops with one line naming the file ---------------------------------

@pytest.fixture(scope="module")
def built(local_ray, embeddings, tmp_path_factory):
    """A flat index, an ivf-flat one (on-disk lists) and an ivf-pq one (vectors.npy for re-ranking) of the
    embeddings, built once."""
    folder = tmp_path_factory.mktemp("built")
    for kind in ("flat", "ivf-flat", "ivf-pq"):
        build_sharded_index(embeddings, folder / kind, kind)
    return folder


def edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def edit_info(**changes):
    return lambda folder: edit_json(folder / "index.json", **changes)


def truncate(name, size):
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:size])


WRITE_AGAIN = "Delete it and rerun the same 'evaluate.py embed' command to write it again"
EMBED_AGAIN = "Delete {emb} and embed it again with 'evaluate.py embed --out {emb}'"
REBUILD = ("Delete {idx} and build it again with 'evaluate.py index --embeddings {emb} --out {idx}', "
           "or pass another --index")


@pytest.mark.parametrize("kind, damage, message", [
    ("flat", edit_info(shards="two"), '{idx}/index.json gives shards "two", not a whole number of at least 1'),
    ("flat", edit_info(shards=0), "{idx}/index.json gives shards 0, not a whole number of at least 1"),
    ("flat", edit_info(shards=-3), "{idx}/index.json gives shards -3, not a whole number of at least 1"),
    ("flat", edit_info(n=2000), "{idx}/index.faiss holds 2,400 vectors of 16 dimensions, index.json says 2,000 of 16"),
    ("flat", lambda folder: (folder / "rows.parquet").unlink(), "index folder {idx} has no rows.parquet"),
    ("flat", truncate("labels.npy", 1000), "{idx}/labels.npy is truncated: 1,000 bytes, 19,328 for its 2,400 rows"),
    ("flat", lambda folder: np.save(folder / "labels.npy", np.zeros(2400, np.float32)),
     "{idx}/labels.npy holds a float32 array of shape (2400,), index.json asks for int64 of shape (2400,)"),
    ("ivf-pq", truncate("vectors.npy", 50_000),
     "{idx}/vectors.npy is truncated: 50,000 bytes, 153,728 for its 2,400 rows"),
    ("ivf-pq", lambda folder: (folder / "vectors.npy").unlink(), "index folder {idx} has no vectors.npy"),
])
def test_a_damaged_index_folder_is_refused_naming_the_file(built, embeddings, kind, damage, message, tmp_path,
                                                          one_line_error):
    idx = shutil.copytree(built / kind, tmp_path / "idx")
    damage(idx)
    query = tmp_path / "query.png"
    cv2.imwrite(str(query), np.zeros((16, 16, 3), np.uint8))
    err = one_line_error(evaluate.main, ["neighbours", "--embedding", "pixels", "--image-size", "16", "--limit", "8",
                                         "--k", "2", "--query", str(query), "--index", str(idx), "--out",
                                         str(tmp_path / "out")])
    assert err == f"error: {message.format(idx=idx)}. {REBUILD.format(idx=idx, emb=embeddings)}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, name, start", [
    ("ivf-pq", "index.faiss", "{idx}/index.faiss cannot be read by FAISS ("),
    ("ivf-flat", "lists.ivfdata", "{idx}/lists.ivfdata is truncated: 1,000 bytes, its index lists "),
    ("ivf-pq", "rows.parquet", "{idx}/rows.parquet cannot be read ("),
])
def test_a_truncated_faiss_or_parquet_file_is_refused_naming_it(built, embeddings, kind, name, start, tmp_path):
    idx = shutil.copytree(built / kind, tmp_path / "idx")
    truncate(name, 1000)(idx)
    with pytest.raises(DataError) as refused:
        load_index(idx)
    assert str(refused.value).startswith(start.format(idx=idx))
    assert str(refused.value).endswith(REBUILD.format(idx=idx, emb=embeddings))


def rewrite_shard(folder, shard, table):
    pq.write_table(table, folder / f"shard-{shard:05d}.parquet")


@pytest.mark.parametrize("damage, message", [
    (lambda emb: edit_json(emb / "manifest.json", shards="six"),
     '{emb}/manifest.json gives shards "six", not a whole number of at least 1. ' + EMBED_AGAIN),
    (lambda emb: edit_json(emb / "manifest.json", shards=0),
     "{emb}/manifest.json gives shards 0, not a whole number of at least 1. " + EMBED_AGAIN),
    (lambda emb: edit_json(emb / "manifest.json", shards=-1),
     "{emb}/manifest.json gives shards -1, not a whole number of at least 1. " + EMBED_AGAIN),
    (lambda emb: edit_json(emb / "manifest.json", shards=2),
     "{emb}/manifest.json gives 2 shards for n 2400 in shards of 400 rows. " + EMBED_AGAIN),
    (lambda emb: rewrite_shard(emb, 2, pq.read_table(emb / "shard-00002.parquet").drop_columns(["embedding"])),
     "shard {emb}/shard-00002.parquet has no embedding column. " + WRITE_AGAIN),
    (lambda emb: rewrite_shard(emb, 3, vectors_table({"row": np.arange(1200, 1600), "label": np.zeros(400, np.int64)},
                                                     np.zeros((400, 8), np.float32))),
     "shard {emb}/shard-00003.parquet holds 8-dimensional vectors, {emb}/shard-00000.parquet 16-dimensional ones. "
     + WRITE_AGAIN),
])
def test_a_damaged_embeddings_folder_is_refused_before_indexing(embeddings, damage, message, tmp_path,
                                                               one_line_error):
    emb = shutil.copytree(embeddings, tmp_path / "emb")
    damage(emb)
    err = one_line_error(evaluate.main, ["index", "--embeddings", str(emb), "--out", str(tmp_path / "idx")])
    assert err == f"error: {message.format(emb=emb)}\n"
    assert not (tmp_path / "idx").exists()
