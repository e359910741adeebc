"""Neighbour search: a gallery image finds itself, the pixel baseline is the seed's pixel MSE, saved indexes
answer like fresh ones, and bad queries, k and models stop with one clear message."""
import csv

import cv2
import faiss
import numpy as np
import pytest

import datasets
import zoo
from core.errors import DataError, ModelError
from datasets.pipeline import make_dataset, prepare_image, to_numpy
from datasets.synthetic_galaxies import milky_way
from search import gallery as search_gallery
from search import index as search_index
from search.embedding import GallerySpec, embedder
from search.gallery import Gallery, build_index
from search.index import open_gallery
from search.queries import load_query, nearest, search_query


def test_a_gallery_image_is_its_own_nearest_neighbour(striped_folder, tmp_path):
    query = striped_folder / "columns" / "07.png"
    result = nearest(str(query), k=4, embedding="pixels", out_dir=tmp_path / "out", dataset="folder",
                     data_dir=str(striped_folder), image_size=24)
    first = result.rows[0]
    assert first["path"] == "columns/07.png" and first["distance"] < 1e-10
    assert first["rank"] == 1 and first["class_name"] == "columns" and first["label"] == 0
    assert [row["class_name"] for row in result.rows] == ["columns"] * 4  # stripes decide over noise
    assert [row["distance"] for row in result.rows] == sorted(row["distance"] for row in result.rows)
    np.testing.assert_array_equal(result.images[0], result.query[0])

    with open(tmp_path / "out" / "neighbours.csv") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["rank", "index", "distance", "label", "class_name", "path"]
    assert [row["rank"] for row in table] == ["1", "2", "3", "4"] and table[0]["path"] == "columns/07.png"
    figure = cv2.imread(str(tmp_path / "out" / "neighbours.png"))
    assert figure.shape[1] > 4 * 24  # the query and four neighbours side by side


@pytest.mark.slow
def test_pixel_distance_is_the_brute_force_pixel_mse():
    spec = GallerySpec(image_size=16, limit=30)
    source = spec.open()
    result = nearest("milky-way", k=5, embedding="pixels", image_size=16, limit=30)
    gallery, labels = to_numpy(make_dataset(source, image_size=16))
    query = search_query("milky-way", spec, source).mean(axis=0)    # the mean of its views, observed like the gallery
    mse = np.mean((gallery - query) ** 2, axis=(1, 2, 3))
    expected = np.argsort(mse)[:5]
    assert [row["index"] for row in result.rows] == expected.tolist()
    np.testing.assert_allclose([row["distance"] for row in result.rows], mse[expected], rtol=1e-4)
    assert [row["class_name"] for row in result.rows] == [source.class_names[c] for c in labels[expected]]


def test_the_milky_way_query_is_prepared_like_the_gallery():
    np.testing.assert_array_equal(load_query("milky-way", GallerySpec(image_size=32)), prepare_image(milky_way(32), 32))
    cropped = load_query("milky-way", GallerySpec(image_size=32, crop=0.5))
    np.testing.assert_array_equal(cropped, prepare_image(milky_way(64), 32, crop=0.5))  # rendered at 32 / 0.5


def test_a_saved_index_answers_like_the_fresh_one_without_reading_the_data(tmp_path, monkeypatch):
    model = zoo.create("autoencoder", image_size=16)
    spec = GallerySpec(image_size=16, limit=40)
    source = spec.open()
    fresh = open_gallery(source, spec, model, "latent", index_path=tmp_path / "index.npz")
    query = load_query("milky-way", spec)
    vector = model.encode(query)

    def no_embedding(*args, **kwargs):
        raise AssertionError("a saved index must not embed the dataset again")

    monkeypatch.setattr(search_index, "embed_source", no_embedding)
    saved = open_gallery(source, spec, model, "latent", index_path=tmp_path / "index.npz")
    for fresh_answer, saved_answer in zip(fresh.search(vector, 6), saved.search(vector, 6)):
        np.testing.assert_array_equal(saved_answer, fresh_answer)
    np.testing.assert_array_equal(saved.embeddings, fresh.embeddings)
    np.testing.assert_array_equal(saved.labels, source.labels())
    assert saved.info["embedding"] == "latent" and saved.info["limit"] == 40

    with pytest.raises(DataError, match=r"was built for another gallery \(limit 40 -> 20"):
        open_gallery(datasets.load("synthetic-galaxies", image_size=16, limit=20), GallerySpec(image_size=16, limit=20),
                     model, "latent", index_path=tmp_path / "index.npz")


def test_large_galleries_get_an_hnsw_index_that_still_finds_exact_matches(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    gallery = Gallery.build(vectors, np.zeros(300, np.int64), {"embedding": "latent"}, exact_limit=100)
    assert isinstance(gallery.index, faiss.IndexHNSWFlat)
    assert isinstance(build_index(vectors), faiss.IndexFlatL2)
    distances, rows = gallery.search(vectors[:50], 3)
    np.testing.assert_array_equal(rows[:, 0], np.arange(50))
    np.testing.assert_allclose(distances[:, 0], 0, atol=1e-6)
    loaded = Gallery.load(gallery.save(tmp_path / "hnsw.npz"))
    assert loaded.index.hnsw.efSearch == search_gallery.HNSW_SEARCH_DEPTH
    np.testing.assert_array_equal(loaded.search(vectors[:50], 3)[1], rows)


def test_models_without_the_asked_embedding_are_refused_with_the_alternative():
    classifier = zoo.create("classifier", image_size=16)
    with pytest.raises(ModelError) as refused:
        embedder(classifier, "latent")
    assert str(refused.value) == ("model 'classifier' has no latent space. "
                                  "Use --embedding scores or a run of autoencoder/simclr/vae")
    with pytest.raises(ModelError, match="model 'autoencoder' has no class scores. Use --embedding latent or a run "
                                         "of classifier"):
        embedder(zoo.create("autoencoder", image_size=16), "scores")
    with pytest.raises(ModelError, match="--embedding latent needs a trained model. Pass --run"):
        embedder(None, "latent")
    probabilities = embedder(classifier, "scores")(np.zeros((2, 16, 16, 3), np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_bad_queries_and_k_are_clear_errors(tmp_path):
    spec = GallerySpec(image_size=16)
    with pytest.raises(DataError, match=r"query image .*nowhere\.png does not exist. Pass --query milky-way or a"):
        load_query(str(tmp_path / "nowhere.png"), spec)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DataError, match=r"broken\.png cannot be decoded"):
        load_query(str(broken), spec)
    for k in (0, 31):
        with pytest.raises(DataError, match=f"--k must be between 1 and the 30 images in the gallery, got {k}"):
            nearest("milky-way", k=k, embedding="pixels", image_size=16, limit=30, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
