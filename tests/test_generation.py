"""evaluation.generation: samples written batch by batch (grayscale for one channel), reproducible seeds, grids
of shrunk cells, Milky-Way-like images from noisy latent vectors, and clear refusals."""
import json

import cv2
import keras
import numpy as np
import pytest
from keras import layers

import zoo
from core.errors import ModelError
from core.files import write_json
from evaluation import generation
from evaluation.generation import generate_images, sampled_batches
from search.embedding import GallerySpec
from search.queries import load_query
from zoo import registry


@keras.saving.register_keras_serializable(package="astrozoo_tests")
class TinyField(keras.Model):
    """A stand-in star-field generator: seeded noise through one 3×3 convolution and a sigmoid, one channel."""

    def __init__(self, size: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.smooth = layers.Conv2D(1, 3, padding="same", activation="sigmoid")
        self.build((None, size, size, 1))

    def build(self, input_shape):
        self.smooth.build(input_shape)
        self.built = True

    def call(self, noise):
        return self.smooth(noise)

    def generate(self, n: int, seed: int = 0):
        noise = np.random.default_rng(seed).standard_normal((n, self.size, self.size, 1)).astype("float32")
        return keras.ops.convert_to_numpy(self(noise))

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def save_run(run_dir, name, model, **config):
    """A run folder as train.py leaves it, for an untrained model (generation needs no training to be tested)."""
    run_dir.mkdir(parents=True)
    if getattr(model, "optimizer", None) is not None:
        model.optimizer.build(model.trainable_variables)  # saved as after training, so loading restores it whole
    model.save(run_dir / "model.keras")
    write_json(run_dir / "config.json", {"model": name, **config})
    return run_dir


@pytest.fixture
def field_run(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "tiny-field",
                        registry.Entry("tiny-field", TinyField, "star-fields", ("generate",), "test generator"))
    return save_run(tmp_path / "field", "tiny-field", TinyField(40))


@pytest.fixture
def vae_run(tmp_path):
    return save_run(tmp_path / "vae", "vae", zoo.create("vae", image_size=16), image_size=16, limit=40)


def read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def test_samples_are_written_batch_by_batch_as_grayscale_pngs(field_run, tmp_path):
    summary = generate_images(field_run, tmp_path / "out", n=5, seed=3, batch_size=2)
    expected = np.concatenate(list(sampled_batches(zoo.load(field_run), 5, 3, 2)))
    assert expected.shape == (5, 40, 40, 1)
    for k in range(5):
        written = read_png(tmp_path / "out" / f"image_{k:04d}.png")
        assert written.shape == (40, 40) and written.dtype == np.uint8  # one channel: a grayscale PNG
        np.testing.assert_array_equal(written, np.round(expected[k, ..., 0] * 255))
    assert read_png(tmp_path / "out" / "grid.png").shape == (2 * 42 + 2, 3 * 42 + 2)  # 5 cells, 3 columns
    saved = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["n"] == 5 and saved["seed"] == 3 and saved["batch_size"] == 2 and saved["near"] is None
    assert saved["image_shape"] == [40, 40, 1] and saved["images_per_second"] > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "generation.json", "grid.png", *[f"image_{k:04d}.png" for k in range(5)]]


def test_the_same_seed_gives_the_same_images(field_run, tmp_path):
    def images(seed, name):
        generate_images(field_run, tmp_path / name, n=3, seed=seed)
        return [(tmp_path / name / f"image_{k:04d}.png").read_bytes() for k in range(3)]

    first = images(1, "a")
    assert images(1, "b") == first
    assert all(a != b for a, b in zip(images(2, "c"), first))


def test_large_images_are_shrunk_in_the_grid_only(field_run, tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "GRID_SIDE", 64)
    generate_images(field_run, tmp_path, n=4)
    grid = read_png(tmp_path / "grid.png")
    assert grid.shape == (2 * 34 + 2, 2 * 34 + 2)  # 2 columns of 32 px cells
    assert grid[0, 0] == grid[34, 5] == round(generation.GRID_FRAME * 255)  # a grey frame between cells
    assert read_png(tmp_path / "image_0003.png").shape == (40, 40)


@pytest.mark.slow
def test_near_decodes_noisy_copies_of_the_query_latent_vector(vae_run, tmp_path):
    model = zoo.load(vae_run)
    query = load_query("milky-way", GallerySpec(image_size=16))
    reconstruction = model.reconstruct(query)[0]

    summary = generate_images(vae_run, tmp_path / "exact", n=3, near="milky-way", noise=0.0)
    for k in range(3):  # no noise: every image is the Milky Way's own reconstruction
        np.testing.assert_allclose(read_png(tmp_path / "exact" / f"image_{k:04d}.png"),
                                   np.round(reconstruction * 255), atol=1)
    assert summary["reconstruction_mse"]["query"] == pytest.approx(float(np.mean((reconstruction - query[0]) ** 2)),
                                                                   rel=1e-4)
    assert summary["reconstruction_mse"]["dataset_images"] == 4  # the validation split of 40 images
    assert read_png(tmp_path / "exact" / "reconstruction.png").shape[1] > 2 * 16

    noisy = generate_images(vae_run, tmp_path / "noisy", n=3, near="milky-way", seed=5)
    assert noisy["noise"] == 0.5 and noisy["near"] == "milky-way"
    decoded = [read_png(tmp_path / "noisy" / f"image_{k:04d}.png").astype(int) for k in range(3)]
    assert np.abs(decoded[0] - decoded[1]).max() > 0 and np.abs(decoded[1] - decoded[2]).max() > 0


def test_models_that_cannot_do_what_is_asked_are_refused(field_run, tmp_path):
    autoencoder = save_run(tmp_path / "ae", "autoencoder", zoo.create("autoencoder", image_size=16), image_size=16)
    with pytest.raises(ModelError, match="model 'autoencoder' cannot sample from a prior. Use --near milky-way"):
        generate_images(autoencoder, tmp_path / "out", n=2)
    classifier = save_run(tmp_path / "cls", "classifier", zoo.create("classifier", image_size=16), image_size=16)
    with pytest.raises(ModelError, match=r"model 'classifier' cannot generate images. Use a run of .*vae"):
        generate_images(classifier, tmp_path / "out", n=2)
    with pytest.raises(ModelError, match=r"model 'tiny-field' cannot encode and decode, so --near does not apply. "
                                         r"Use a run of [a-z/-]*vae"):
        generate_images(field_run, tmp_path / "out", n=2, near="milky-way")
    with pytest.raises(ModelError, match="--noise only applies to --near"):
        generate_images(field_run, tmp_path / "out", n=2, noise=0.5)
    assert not (tmp_path / "out").exists()

    generate_images(field_run, tmp_path / "out", n=3)
    with pytest.raises(ModelError, match=r"already holds 1 other generated images \(image_0002.png, ...\)"):
        generate_images(field_run, tmp_path / "out", n=2)
