"""The layered statistical model: extraction gives patches, coordinate vectors and the background histogram of
a source (star extraction itself: tests/test_stars.py), coordinates encode and decode, the background sampler
reproduces its histogram, the coordinate DCGAN is fully connected and learns star counts, and train.py writes a
run folder of parts that generates 1000×1000 fields."""
import csv
import json
import stat

import keras
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

import train
import zoo
from core.stars import FoundStars, background_pixels, find_stars
from datasets.source import ArraySource
from datasets.star_fields import StarFields
from zoo.layered import BackgroundSampler, CoordinateGAN, decode_coordinates, encode_coordinates

LEVELS = np.arange(256)


def histogram(pixels):
    return np.bincount(np.asarray(pixels).ravel(), minlength=256)


def coordinate_gan(**changes):
    """The layered model's coordinate DCGAN with the layered entry's defaults (the builder holds them, once)."""
    defaults = zoo.get_entry("layered").defaults
    options = {"max_stars": defaults["max_stars"], "latent_dim": defaults["coordinate_latent_dim"],
               "units": defaults["coordinate_units"], "seed": defaults["seed"], **changes}
    return CoordinateGAN(**options)


def test_extract_gives_patches_coordinates_and_the_background_histogram_of_the_first_fields():
    fields = np.full((3, 32, 32, 1), 6, np.uint8)
    fields[0, 10:13, 20:23] = 250                       # one star in field 0, two in field 1, none in field 2
    fields[1, 4:7, 4:7] = 250
    fields[1, 24:27, 8:11] = 220
    fields[2, 0, 0] = 7
    model = zoo.create("layered", image_size=32, patch_size=8, max_stars=3, min_distance=6, background_images=2)
    patches, vectors, background = model.extract(ArraySource(fields), verbose=0)
    assert patches.shape == (3, 8, 8) and patches.dtype == np.uint8
    assert [patch[4, 4] for patch in patches] == [250, 250, 220]
    np.testing.assert_allclose(vectors, [[21 / 32, 11 / 32, -1, -1, -1, -1],
                                         [5 / 32, 5 / 32, 9 / 32, 25 / 32, -1, -1],
                                         [-1] * 6], atol=1e-6)
    # the sky of the first two fields: every pixel outside the 8×8 patches, all at level 6
    assert background.sum() == 2 * 32 * 32 - 3 * 8 * 8 and background[6] == background.sum()


def test_coordinates_encode_padded_with_minus_one_and_decode_back():
    stars = FoundStars(x=np.array([700.0, 100.0, 400.0]), y=np.array([10.0, 990.0, 500.0]),
                       peak=np.array([90.0, 80.0, 70.0]), radius=np.ones(3))
    vector = encode_coordinates(stars, field_size=1000)
    assert vector.shape == (50,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector[:6], [0.1, 0.99, 0.4, 0.5, 0.7, 0.01])   # ordered by x
    assert (vector[6:] == -1).all()
    np.testing.assert_allclose(decode_coordinates(vector, 1000), [[100, 990], [400, 500], [700, 10]], atol=1e-3)
    generated = np.array([0.2, 0.3, -0.1, 0.5, 0.5, 1.2, 0.0, 1.0] + [-0.9] * 42)
    np.testing.assert_allclose(decode_coordinates(generated, 1000), [[200, 300], [0, 1000]])


def test_more_than_25_stars_keep_the_brightest():
    rng = np.random.default_rng(0)
    stars = FoundStars(x=rng.uniform(0, 1000, 30), y=rng.uniform(0, 1000, 30), peak=np.arange(30.0), radius=np.ones(30))
    decoded = decode_coordinates(encode_coordinates(stars, 1000), 1000)
    assert len(decoded) == 25
    np.testing.assert_allclose(np.sort(decoded[:, 0]), np.sort(stars.x[5:]), atol=1e-3)


def test_background_sampler_reproduces_the_histogram_of_one_field():
    field, _ = StarFields(n=1, seed=2).field(0)
    sky = background_pixels(field, find_stars(field))
    sampler = BackgroundSampler.from_pixels(sky)
    sample = sampler.sample((1000, 1000), np.random.default_rng(0))
    assert sample.dtype == np.uint8 and sample.shape == (1000, 1000)
    distance = wasserstein_distance(LEVELS, LEVELS, histogram(sky), histogram(sample))
    assert distance < 0.02                                           # grey levels
    assert wasserstein_distance(LEVELS, LEVELS, sampler.histogram, histogram(field)) > 2 * distance   # stars matter


def test_coordinate_gan_is_fully_connected_with_a_tanh_output_of_50():
    gan = coordinate_gan(latent_dim=8, units=16)
    for network in (gan.generator, gan.discriminator):
        assert {type(layer).__name__ for layer in network.layers} == {"Dense", "LeakyReLU"}
    assert gan.generator.output_shape == (None, 50) and gan.generator.layers[-1].activation.__name__ == "tanh"
    assert gan.discriminator.output_shape == (None, 1)


@pytest.mark.slow
def test_coordinate_gan_learns_the_star_counts():
    source = StarFields(n=64, seed=0)
    vectors = np.stack([encode_coordinates(find_stars(source.field(i)[0]), 1000) for i in range(64)])
    real_counts = (vectors[:, ::2] >= 0).sum(axis=1)
    gan = coordinate_gan()

    def counts_of(generated):
        return np.array([len(decode_coordinates(vector, 1000)) for vector in generated])

    # before training, about a quarter of the 25 pairs fall inside [0, 1]²: 6-8 stars instead of the real 12
    assert abs(counts_of(gan.generate(200, seed=1)).mean() - real_counts.mean()) > 4
    gan.compile(generator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                discriminator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    history = gan.fit(vectors, batch_size=16, epochs=150, shuffle=True, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all() and np.isfinite(history.history["g_loss"]).all()
    generated = gan.generate(200, seed=1)
    assert generated.shape == (200, 50) and generated.dtype == np.float32
    counts = counts_of(generated)
    # seeds 0-3 give a mean 1.0-1.9 below the real 12.4 and at least 5 stars in every field
    assert np.mean((counts >= 5) & (counts <= 25)) > 0.97 and abs(counts.mean() - real_counts.mean()) < 3


@pytest.mark.slow
def test_train_cli_writes_parts_and_the_loaded_model_generates_fields(tmp_path):
    run_dir = tmp_path / "run"
    train.main(["--model", "layered", "--dataset", "star-fields", "--limit", "10", "--epochs", "2",
                "--steps-per-epoch", "2", "--batch-size", "8", "--option", "star_filters=8", "--option",
                "coordinate_epochs=3", "--out", str(run_dir)])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_options"]["star_filters"] == 8 and config["image_size"] == 1000
    with open(run_dir / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    assert [row["part"] for row in history] == ["extraction", "stars", "stars"] + ["coordinates"] * 3
    assert history[0]["fields"] == "9" and int(history[0]["stars"]) >= 45
    assert all(float(row["seconds"]) > 0 for row in history)
    losses = {"stars": ("d_loss", "g_loss", "gradient_penalty"), "coordinates": ("d_loss", "g_loss")}
    for row in history[1:]:                  # "nan" in the CSV is a non-empty string: read the numbers
        assert all(np.isfinite(float(row[key])) for key in losses[row["part"]]), row
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["generated.png", "stars_extracted.png",
                                                                         "stars_generated.png"]
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["background.npy", "coordinates.keras",
                                                                       "examples.npy", "parts.json", "stars.keras"]

    assert stat.S_IMODE((run_dir / "model").stat().st_mode) == stat.S_IMODE(run_dir.stat().st_mode)

    model = zoo.load(run_dir)
    saved = keras.saving.load_model(run_dir / "model" / "coordinates.keras")
    for loaded, written in zip(model.coordinates.generator.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, written)       # the coordinate GAN itself holds the trained weights
    images = model.generate(2, seed=3)
    assert images.shape == (2, 1000, 1000, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images, model.generate(2, seed=3))
    centres = model.sample_centres(2, seed=3)
    yy, xx = np.mgrid[:1000, :1000]
    for image, field_centres in zip(images[..., 0], centres):
        far = np.ones((1000, 1000), bool)
        for x, y in field_centres:
            far &= np.maximum(np.abs(xx - x), np.abs(yy - y)) > 16
        sky = np.round(image[far] * 255).astype(np.uint8)
        assert wasserstein_distance(LEVELS, LEVELS, model.background.histogram, histogram(sky)) < 0.05
