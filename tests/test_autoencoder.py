"""The seed autoencoder on galaxy-like images: mostly dark sky, where a pixel-MSE loss collapses to black."""
import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError
from datasets.synthetic_galaxies import SyntheticGalaxies


@pytest.fixture(scope="module")
def galaxies():
    images, _ = SyntheticGalaxies(16, n=256).read(0, 256)
    return images.astype("float32") / 255


@pytest.mark.slow
def test_default_loss_learns_dark_galaxy_images_instead_of_collapsing_to_black(galaxies):
    model = zoo.create("autoencoder", image_size=16)
    model.fit(galaxies, galaxies, batch_size=32, epochs=10, verbose=0)
    reconstructions = model.reconstruct(galaxies)
    black_error = np.mean(galaxies ** 2)                 # what an all-black output scores
    flat_error = np.var(galaxies)                        # the best single grey level: 0.6 of black_error
    assert flat_error > 0.55 * black_error
    # 10 epochs reach 0.31-0.34 of black_error for seeds 0-4 (6 epochs: 0.41-0.54, too close to a flat grey)
    assert np.mean((reconstructions - galaxies) ** 2) < 0.45 * black_error
    assert reconstructions.mean() > 0.5 * galaxies.mean()


def test_loss_option_is_saved_and_checked(tmp_path):
    model = zoo.create("autoencoder", image_size=16, loss="mse")
    model.save(tmp_path / "ae.keras")
    assert keras.saving.load_model(tmp_path / "ae.keras").loss_name == "mse"
    with pytest.raises(ModelError, match="unknown autoencoder loss 'l1'. Choose one of: bce, mse"):
        zoo.create("autoencoder", loss="l1")


@pytest.mark.slow
def test_resnet_preset_is_saved_and_the_seed_stays_the_default(tmp_path):
    assert zoo.create("autoencoder").count_params() == 132_611
    model = zoo.create("autoencoder", preset="resnet")
    assert model.count_params() == 816_387
    images = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    model.save(tmp_path / "ae.keras")
    loaded = keras.saving.load_model(tmp_path / "ae.keras")
    assert loaded.preset == "resnet"
    np.testing.assert_array_equal(loaded.reconstruct(images), model.reconstruct(images))
    with pytest.raises(ModelError, match="unknown autoencoder preset 'wide'. Choose one of: seed, resnet"):
        zoo.create("autoencoder", preset="wide")
