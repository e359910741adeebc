"""The VAE's loss terms against their formulas, the moving statistics its samples are drawn with, and the seed
preset."""
import math

import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError


def constant_prediction(model, reconstruction: float, code: float = 0.0, n: int = 2):
    """y_pred of a VAE that reconstructs every pixel as `reconstruction` from posteriors N(0, I) and codes `code`."""
    zeros = np.zeros((n, model.latent_dim), "float32")
    image = np.full((n, model.image_size, model.image_size, model.channels), reconstruction, "float32")
    return image, zeros, zeros, zeros + code


@pytest.mark.parametrize("min_sigma, variance", [(0.0, 0.01), (0.2, 0.04)])
def test_gaussian_likelihood_uses_the_reconstruction_rms_above_its_floor(min_sigma, variance):
    model = zoo.create("vae", image_size=16, min_sigma=min_sigma)
    images = np.full((2, 16, 16, 3), 0.5, "float32")
    nll, kl = model.loss_terms(images, constant_prediction(model, 0.4))
    expected = 0.5 * 16 * 16 * 3 * (math.log(2 * math.pi * variance) + 0.01 / variance)
    assert float(nll) == pytest.approx(expected, rel=1e-5)
    assert float(kl) == 0.0


def test_loss_is_likelihood_plus_beta_kl():
    model = zoo.create("vae", image_size=16, beta=2.0)
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    prediction = model(images, training=True)
    nll, kl = model.loss_terms(images, prediction)
    assert float(kl) > 0
    assert float(model.compute_loss(images, None, prediction, training=False)) == pytest.approx(
        float(nll) + 2.0 * float(kl), rel=1e-6)


def test_training_moves_the_code_statistics_and_pixel_noise_towards_the_batch():
    model = zoo.create("vae", image_size=16, latent_dim=4)
    images = np.full((2, 16, 16, 3), 0.5, "float32")
    model.compute_loss(images, None, constant_prediction(model, 0.2, code=2.0), training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.code_mean), np.zeros(4))
    model.compute_loss(images, None, constant_prediction(model, 0.2, code=2.0), training=True)     # rms 0.3
    statistics = {name: keras.ops.convert_to_numpy(getattr(model, name))
                  for name in ("code_mean", "code_second_moment", "pixel_noise")}
    np.testing.assert_allclose(statistics["code_mean"], np.full(4, 0.02), rtol=1e-5)
    np.testing.assert_allclose(statistics["code_second_moment"], 0.99 * np.eye(4) + 0.01 * 4.0, rtol=1e-5)
    np.testing.assert_allclose(statistics["pixel_noise"], np.full(3, 0.99 * 0.1 + 0.01 * 0.3), rtol=1e-5)


def test_samples_follow_the_codes_mean_and_covariance_plus_pixel_noise():
    model = zoo.create("vae", image_size=16, latent_dim=3)
    mean, covariance = np.array([1.0, -2.0, 0.5]), np.array([[4.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.25]])
    model.code_mean.assign(mean)
    model.code_second_moment.assign(covariance + np.outer(mean, mean))
    codes = model.sample_codes(np.random.default_rng(0).standard_normal((20000, 3)))
    np.testing.assert_allclose(codes.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(codes, rowvar=False), covariance, atol=0.08)

    model.pixel_noise.assign([0.02, 0.05, 0.1])
    rng = np.random.default_rng(3)
    decoded = model.decode(model.sample_codes(rng.standard_normal((4, 3))))
    noise = rng.standard_normal(decoded.shape).astype("float32") * np.array([0.02, 0.05, 0.1], "float32")
    np.testing.assert_allclose(model.generate(4, seed=3), np.clip(decoded + noise, 0, 1), atol=1e-6)


def test_seed_preset_is_the_seed_vae_with_pixel_bce_and_an_n01_prior(tmp_path):
    model = zoo.create("vae", preset="seed")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 165_443
    images = np.full((2, 64, 64, 3), 0.5, "float32")
    nll, _ = model.loss_terms(images, constant_prediction(model, 0.4))
    assert float(nll) == pytest.approx(64 * 64 * 3 * -(0.5 * math.log(0.4) + 0.5 * math.log(0.6)), rel=1e-4)
    np.testing.assert_array_equal(model.generate(3, seed=1), model.decode(
        np.random.default_rng(1).standard_normal((3, 64)).astype("float32")))
    model.save(tmp_path / "seed.keras")
    loaded = keras.saving.load_model(tmp_path / "seed.keras")
    assert loaded.preset == "seed"
    np.testing.assert_array_equal(loaded.reconstruct(images), model.reconstruct(images))


def test_default_is_the_residual_preset_and_presets_are_checked():
    model = zoo.create("vae")
    assert model.preset == "resnet" and model.min_sigma == 0.15
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 881_987
    with pytest.raises(ModelError, match="unknown vae preset 'wide'. Choose one of: seed, resnet"):
        zoo.create("vae", preset="wide")
