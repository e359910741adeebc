"""The VAE's loss terms against their formulas, its MMD, the pixel noise of its samples, and the seed preset."""
import math

import keras
import numpy as np
import pytest

import zoo
from zoo.registry import ModelError
from zoo.vae import mmd


def constant_prediction(model, reconstruction: float, n: int = 2):
    """y_pred of a VAE that reconstructs every pixel as `reconstruction` from codes at the prior's mean."""
    zeros = np.zeros((n, model.latent_dim), "float32")
    image = np.full((n, model.image_size, model.image_size, 3), reconstruction, "float32")
    return image, zeros, zeros, zeros, np.ones_like(zeros)


@pytest.mark.parametrize("min_sigma, variance", [(0.0, 0.01), (0.2, 0.04)])
def test_gaussian_likelihood_uses_the_reconstruction_rms_above_its_floor(min_sigma, variance):
    model = zoo.create("vae", image_size=16, min_sigma=min_sigma)
    images = np.full((2, 16, 16, 3), 0.5, "float32")
    nll, kl, _, rms = model.loss_terms(images, constant_prediction(model, 0.4))
    pixels = 16 * 16
    expected = 0.5 * pixels * 3 * (math.log(2 * math.pi * variance) + 0.01 / variance)
    assert float(nll) == pytest.approx(expected, rel=1e-5)
    assert float(kl) == 0.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rms), [0.1] * 3, rtol=1e-5)


def test_loss_is_likelihood_plus_beta_kl_plus_weighted_mmd():
    model = zoo.create("vae", image_size=16, beta=2.0, mmd_weight=10.0)
    images = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    prediction = model(images, training=True)
    nll, kl, discrepancy, _ = model.loss_terms(images, prediction)
    loss = model.compute_loss(images, None, prediction, training=False)
    assert float(loss) == pytest.approx(float(nll) + 2.0 * float(kl) + 10.0 * float(discrepancy), rel=1e-6)


def test_mmd_is_near_zero_for_the_prior_and_large_for_narrower_codes():
    rng = np.random.default_rng(0)
    prior, other = (rng.standard_normal((256, 64)).astype("float32") for _ in range(2))
    assert abs(float(mmd(prior, other))) < 0.01
    assert float(mmd(0.5 * prior, other)) > 0.1


def test_training_moves_the_pixel_noise_towards_the_reconstruction_rms():
    model = zoo.create("vae", image_size=16)
    images = np.full((2, 16, 16, 3), 0.5, "float32")
    model.compute_loss(images, None, constant_prediction(model, 0.2), training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.pixel_noise), [0.1] * 3)
    model.compute_loss(images, None, constant_prediction(model, 0.2), training=True)     # rms 0.3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.pixel_noise), [0.99 * 0.1 + 0.01 * 0.3] * 3,
                               rtol=1e-5)


def test_generate_is_the_decoded_prior_sample_plus_pixel_noise():
    model = zoo.create("vae", image_size=16)
    model.pixel_noise.assign([0.02, 0.05, 0.1])
    rng = np.random.default_rng(3)
    decoded = model.decode(rng.standard_normal((4, model.latent_dim)).astype("float32"))
    noise = rng.standard_normal(decoded.shape).astype("float32") * np.array([0.02, 0.05, 0.1], "float32")
    np.testing.assert_allclose(model.generate(4, seed=3), np.clip(decoded + noise, 0, 1), atol=1e-6)


def test_seed_preset_is_the_seed_vae_with_pixel_bce(tmp_path):
    model = zoo.create("vae", preset="seed", mmd_weight=0.0)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 165_443
    images = np.full((2, 64, 64, 3), 0.5, "float32")
    nll, _, _, _ = model.loss_terms(images, constant_prediction(model, 0.4))
    bce = -(0.5 * math.log(0.4) + 0.5 * math.log(0.6))
    assert float(nll) == pytest.approx(64 * 64 * 3 * bce, rel=1e-4)
    generated = model.generate(3, seed=1)
    np.testing.assert_array_equal(generated, model.decode(
        np.random.default_rng(1).standard_normal((3, 64)).astype("float32")))    # the mean, no pixel noise
    model.save(tmp_path / "seed.keras")
    loaded = keras.saving.load_model(tmp_path / "seed.keras")
    assert loaded.preset == "seed"
    np.testing.assert_array_equal(loaded.reconstruct(images), model.reconstruct(images))


def test_default_is_the_residual_preset_and_presets_are_checked():
    model = zoo.create("vae")
    assert model.preset == "resnet" and model.count_params() == 881_990
    with pytest.raises(ModelError, match="unknown vae preset 'wide'. Choose one of: seed, resnet"):
        zoo.create("vae", preset="wide")
