"""evaluate.py embed on a local Ray: the shards hold what one process computes, with the source's columns, and a
killed embed resumes to the same shards without embedding the finished ones again; embed, index and neighbours
from the command line. Bad input: tests/test_bad_input.py."""
import csv
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import evaluate
import zoo
from core.errors import DataError
from core.runs import TrainConfig
from search.embedding import GallerySpec, embed_source, embedder
from search.index import load_index
from search.shards import MANIFEST, embed_shards, open_embeddings, shard_path, shard_vectors
from training import train

ROWS, SHARD_ROWS = 600, 256


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "autoencoder"
    train(TrainConfig(model="autoencoder", limit=40, image_size=16, epochs=1, batch_size=8), run_dir=run, verbose=0)
    return run


def read_shards(folder):
    return [pq.read_table(path) for path in open_embeddings(folder)[1]]


@pytest.mark.slow
def test_ray_workers_embed_what_one_process_does_and_a_killed_embed_resumes(local_ray, autoencoder_run, tmp_path):
    out = tmp_path / "emb"
    manifest = embed_shards(out, autoencoder_run, workers=2, shard_rows=SHARD_ROWS, limit=ROWS)
    assert (manifest["n"], manifest["shards"], manifest["embedding"]) == (ROWS, 3, "latent")
    assert len(manifest["model_sha256"]) == 64 and manifest["run"] == os.path.realpath(autoencoder_run)
    tables = read_shards(out)
    assert [len(table) for table in tables] == [256, 256, 88]
    assert tables[0].column_names == ["row", "dataset_index", "label", "embedding"]
    spec = GallerySpec(image_size=16, limit=ROWS)
    expected, labels = embed_source(spec.open(), {"latent": embedder(zoo.load(autoencoder_run), "latent")}, spec)
    vectors = np.concatenate([shard_vectors(table) for table in tables])
    assert vectors.shape == (ROWS, 64)
    np.testing.assert_allclose(vectors, expected["latent"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([t.column("row").to_numpy() for t in tables]), np.arange(ROWS))
    np.testing.assert_array_equal(np.concatenate([t.column("label").to_numpy() for t in tables]), labels)

    # A kill leaves the manifest, the shards finished so far and a dead process's half-written temporary.
    first = shard_path(out, 0).stat()
    for shard in (1, 2):
        shard_path(out, shard).unlink()
    half = out / ".shard-00001-999999999-0.parquet"
    half.write_bytes(b"PAR1 half")
    with pytest.raises(DataError, match=r"holds 1 of 3 shards \(an interrupted embed\). Rerun the same"):
        open_embeddings(out)
    embed_shards(out, autoencoder_run, workers=2, shard_rows=SHARD_ROWS, limit=ROWS)
    assert shard_path(out, 0).stat().st_mtime_ns == first.st_mtime_ns  # not embedded again
    assert not half.exists()
    for resumed, uninterrupted in zip(read_shards(out), tables):
        assert resumed.equals(uninterrupted)
    assert sorted(path.name for path in out.iterdir()) == [MANIFEST] + [f"shard-0000{k}.parquet" for k in range(3)]


@pytest.mark.slow
def test_embed_index_and_neighbours_from_the_command_line(local_ray, striped_folder, tmp_path, capsys):
    gallery = ["--dataset", "folder", "--data-dir", str(striped_folder), "--image-size", "24", "--embedding", "pixels"]
    evaluate.main(["embed", *gallery, "--out", str(tmp_path / "emb"), "--workers", "2"])
    assert capsys.readouterr().out.endswith(f"40 images (pixels) in 1 shards; wrote {tmp_path / 'emb'}/\n")
    shard = pq.read_table(shard_path(tmp_path / "emb", 0))
    assert shard.column_names == ["row", "dataset_index", "label", "path", "embedding"]
    assert shard.column("path").to_pylist()[:2] == ["columns/01.png", "columns/03.png"]
    evaluate.main(["index", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "idx"),
                   "--kind", "ivf-flat"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "training 8 cells on 40 vectors" and len(printed) == 2
    assert printed[1].startswith("ivf-flat index of 40 vectors (nlist 8, nprobe 8) in ")
    evaluate.main(["neighbours", "--query", str(striped_folder / "columns" / "07.png"), *gallery, "--k", "4",
                   "--index", str(tmp_path / "idx"), "--out", str(tmp_path / "out")])
    with open(tmp_path / "out" / "neighbours.csv") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["path"] == "columns/07.png" and float(table[0]["distance"]) < 1e-10
    assert [row["class_name"] for row in table] == ["columns"] * 4
    index = load_index(tmp_path / "idx")
    rows = [int(row["index"]) for row in table]
    assert index.metadata(rows)["path"].tolist() == [row["path"] for row in table]
