"""SimCLR: the NT-Xent value, galaxy-safe augmentations, embeddings, save/load, and a run's k-NN column."""
import csv
import json
import math

import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError
from core.files import write_png
from core.runs import TrainConfig
from training import train
from training.run import resolve_recipe
from zoo.observation import GalaxyAugment
from zoo.simclr import nt_xent

AUGMENT = dict(shift=0.06, zoom=1.15, blur=1.0, noise=0.03, jitter=0.25)


def read_history(run_dir):
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def test_nt_xent_on_two_orthogonal_pairs():
    # views [1,0], [0,1], [1,0], [0,1]: each has its partner at similarity 1 and two others at 0, so every row's
    # loss is -log(e^(1/t) / (e^(1/t) + 2)) and so is the mean
    first = np.array([[1.0, 0.0], [0.0, 3.0]], np.float32)     # lengths do not matter: views are normalised
    for temperature in (1.0, 0.5):
        expected = math.log(math.exp(1 / temperature) + 2) - 1 / temperature
        assert float(nt_xent(first, first, temperature)) == pytest.approx(expected, rel=1e-5)


def test_nt_xent_is_lower_for_matched_views_than_for_shuffled_ones():
    rng = np.random.default_rng(0)
    first = rng.standard_normal((16, 8)).astype(np.float32)
    matched = first + 0.1 * rng.standard_normal((16, 8)).astype(np.float32)
    shuffled = matched[rng.permutation(16)]
    matched_loss, shuffled_loss = float(nt_xent(first, matched, 0.2)), float(nt_xent(first, shuffled, 0.2))
    # log(2n - 1) = log 31 is the loss of views that are all alike; a shuffled partner is worse than that
    assert matched_loss < 1.0 < math.log(31) < shuffled_loss


def galaxy_batch(n=6, size=24):
    """Round Gaussian blobs at the centre, of different widths and colours, in [0, 1]."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    widths = np.linspace(2, 5, n)[:, None, None]
    blobs = np.exp(-(yy ** 2 + xx ** 2) / (2 * widths ** 2))
    colours = np.linspace(0.5, 1.0, 3 * n).reshape(n, 1, 1, 3)
    return (blobs[..., None] * colours).astype(np.float32)


def test_augmentations_keep_the_galaxy_in_the_frame_and_repeat_with_their_seed():
    images = galaxy_batch()
    views = np.asarray(GalaxyAugment(**AUGMENT, seed=3)(images))
    assert views.shape == images.shape and views.dtype == np.float32
    # a view moves the light's centre by the shift alone (up to 6% of 24 px along each axis: 2.04 px), and keeps
    # its total within brightness and colour jitter (e^±0.33) times the zoom's change of area (1.15^±2)
    yy, xx = np.mgrid[:24, :24] - 11.5
    light = views.mean(axis=-1)
    centre = np.hypot((light * yy).sum(axis=(1, 2)), (light * xx).sum(axis=(1, 2))) / light.sum(axis=(1, 2))
    assert centre.max() < 2.5, centre
    kept = views.sum(axis=(1, 2, 3)) / images.sum(axis=(1, 2, 3))
    assert 0.5 < kept.min() and kept.max() < 2, kept
    np.testing.assert_array_equal(views, np.asarray(GalaxyAugment(**AUGMENT, seed=3)(images)))
    assert not np.allclose(views, np.asarray(GalaxyAugment(**AUGMENT, seed=4)(images)))
    layer = GalaxyAugment(**AUGMENT, seed=3)
    assert not np.allclose(layer(images), layer(images))   # every call draws new views


def test_rotations_and_flips_turn_about_the_centre():
    # with no shift, zoom, blur, jitter or noise, only a rotation and a mirror flip remain: a round blob at the
    # centre comes back unchanged up to bilinear resampling inside the inscribed circle (the corners come from
    # outside the frame, reflected), and an off-centre dot stays at its radius
    still = dict(shift=0.0, zoom=1.0, blur=0.0, noise=0.0, jitter=0.0)
    images = galaxy_batch()
    inside = np.hypot(*(np.mgrid[:24, :24] - 11.5)) <= 11.5
    np.testing.assert_allclose(np.asarray(GalaxyAugment(**still, seed=0)(images))[:, inside], images[:, inside],
                               atol=0.02)
    dot = np.zeros((8, 25, 25, 1), np.float32)
    dot[:, 12, 17] = 1.0            # 5 px right of the centre pixel (12, 12): too far from the edge to be reflected
    turned = np.asarray(GalaxyAugment(**still, seed=1)(dot))[..., 0]
    yy, xx = np.mgrid[:25, :25]
    radius = np.hypot(yy - 12, xx - 12)
    centroid_radius = (turned * radius).sum(axis=(1, 2)) / turned.sum(axis=(1, 2))
    np.testing.assert_allclose(centroid_radius, 5, atol=0.5)
    assert len({(int(round(np.average(yy, weights=t))), int(round(np.average(xx, weights=t)))) for t in turned}) > 4


def test_shift_and_zoom_keep_a_centred_galaxy_in_the_frame():
    images = galaxy_batch(n=16, size=32)
    views = np.asarray(GalaxyAugment(shift=0.06, zoom=1.15, blur=0.0, noise=0.0, jitter=0.0, seed=2)(images))
    yy, xx = np.mgrid[:32, :32]
    weights = views.sum(axis=-1)
    centre_y, centre_x = ((weights * grid).sum(axis=(1, 2)) / weights.sum(axis=(1, 2)) for grid in (yy, xx))
    assert np.all(np.abs(centre_y - 15.5) <= 0.06 * 32 + 0.5) and np.all(np.abs(centre_x - 15.5) <= 0.06 * 32 + 0.5)
    flux = weights.sum(axis=(1, 2)) / images.sum(axis=(1, 2, 3))
    assert np.all((flux > 1 / 1.15 ** 2 - 0.05) & (flux < 1.15 ** 2 + 0.05))   # zoom scales the area


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")   # untrained: no optimizer state yet
def test_embeddings_save_and_load_identically(tmp_path):
    model = zoo.create("simclr", image_size=16, feature_dim=32, temperature=0.1)
    images = galaxy_batch(n=5, size=16)
    vectors = model.encode(images)
    assert vectors.shape == (5, 32) and np.isfinite(vectors).all()
    np.testing.assert_array_equal(vectors, model.encode(images))       # no augmentation in encode
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.encode(images), vectors)
    assert loaded.get_config()["temperature"] == 0.1 and loaded.augmenter.get_config()["zoom"] == 1.3
    # the views go on from the saved state of the augmentation's random generator
    np.testing.assert_array_equal(loaded.augmenter(images), model.augmenter(images))


def test_bad_options_are_refused_with_what_to_do():
    with pytest.raises(ModelError, match="simclr needs an image size of at least 16 .*Use --image-size 64"):
        zoo.create("simclr", image_size=8)
    with pytest.raises(ModelError,
                       match="feature_dim must be a multiple of 8 .*, got 12. Use e.g. --option feature_dim=8"):
        zoo.create("simclr", image_size=16, feature_dim=12)
    with pytest.raises(ModelError, match=r"option zoom=0.9 of model 'simclr' must be a number at least 1\b"):
        zoo.create("simclr", zoom=0.9)
    with pytest.raises(ModelError, match="option temperature=0 of model 'simclr' must be a number above 0"):
        zoo.create("simclr", temperature=0)


def test_epochs_and_batch_size_left_out_are_the_models_own_else_10_and_32():
    for config, expected in ((TrainConfig(model="classifier"), (10, 32)), (TrainConfig(model="simclr"), (25, 256)),
                             (TrainConfig(model="simclr", epochs=3, batch_size=8), (3, 8)),
                             (TrainConfig(model="simclr", options={"epochs": 40}), (40, 256))):
        resolve_recipe(config)
        assert (config.epochs, config.batch_size) == expected


@pytest.mark.slow
def test_a_labeled_run_logs_knn_accuracy_and_uses_the_models_own_batch_size(tmp_path):
    run_dir = tmp_path / "simclr"
    train(TrainConfig(model="simclr", limit=40, image_size=16, epochs=2, options={"feature_dim": 32}), run_dir=run_dir,
          verbose=0)
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert {"loss", "val_loss", "val_knn_accuracy", "seconds"} <= set(history[0])
    # 4 validation images: the accuracy is a multiple of 1/4
    assert all(round(float(row["val_knn_accuracy"]) * 4, 6) in (0, 1, 2, 3, 4) for row in history)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["batch_size"] == 256 and config["epochs"] == 2          # the builder's batch size, the flag's epochs
    assert config["model_options"]["steps_per_epoch"] == 1 and config["model_options"]["epochs"] == 2
    assert zoo.load(run_dir).encode(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 32)


@pytest.mark.slow
def test_an_unlabeled_run_trains_without_knn_accuracy(tmp_path):
    folder = tmp_path / "images"
    for i, image in enumerate(galaxy_batch(n=13, size=16)):      # 12 train images: two batches of 6, 1 validation
        write_png(folder / f"galaxy_{i:02d}.png", (image * 255).astype(np.uint8))
    run_dir = tmp_path / "simclr"
    train(TrainConfig(model="simclr", dataset="folder", data_dir=str(folder), image_size=16, epochs=1, batch_size=6,
                      options={"feature_dim": 32}), run_dir=run_dir, verbose=0)
    history = read_history(run_dir)
    assert len(history) == 1 and "val_knn_accuracy" not in history[0] and float(history[0]["loss"]) > 0
