"""A convolutional VAE that generates galaxies from N(0, I) and keeps their shape when it reconstructs them.

Preset `resnet` (default): the residual encoder and decoder of zoo/autoencoder.py and a Gaussian likelihood whose
standard deviation σ is the batch's own reconstruction RMS per channel (the "σ-VAE" of Rybkin et al. 2021) but
never below `min_sigma`: -log p(x|z) = D/2·(log(2π·σ²) + MSE/σ²), σ² = max(MSE, min_sigma²). The galaxies are
mostly dark sky, where the seed's pixel BCE is nearly flat: it blurred every galaxy into a round blob and used
22 nats of latent.
A Gaussian weighs pixel errors by how well the model reconstructs; the floor keeps that weight from growing so
large that the codes become a lookup table (177 nats here) that no sample of the prior resembles.

Sampling. After 1,000 steps the codes of real galaxies do not fill N(0, I) (their variance was 0.4 per
component, and correlated), so decoding N(0, I) samples directly draws shapes no galaxy has. The model keeps the
codes' moving mean and covariance, like BatchNorm keeps moving statistics, and `generate` maps N(0, I) samples
u to codes mean + L·u (L·Lᵀ = the covariance): a Gaussian fitted to the codes after training, as in the
"ex-post density estimation" of Ghosh et al. 2020. It then adds the likelihood's pixel noise (the moving
reconstruction RMS): real galaxies have sky noise, and a sample of the model is its mean plus its noise.

Preset `seed` is the original model: the autoencoder's seed trunk and decoder, pixel BCE + β·KL, samples decoded
from N(0, I) as they are.

Losses live in `compute_loss` with keras.ops and the terms (`reconstruction_loss`, `kl_loss`, in nats per image)
are reported through `compute_metrics`, so the VAE trains with TensorFlow or JAX.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from core.worlds import GALAXY_SIZE
from zoo.autoencoder import LatentModel, check_preset, conv_decoder, conv_trunk, residual_decoder, residual_trunk
from zoo.inference import predict
from zoo.registry import register

MOMENTUM = 0.99              # of the moving code statistics and pixel noise (a window of about 100 batches)


@keras.saving.register_keras_serializable(package="astrozoo")
class VAE(LatentModel):
    """Encoder → (z_mean, z_log_var) → reparameterised sample → decoder."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int,
                 beta: float, seed: int, preset: str, min_sigma: float, **kwargs):
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        check_preset("vae", preset)
        self.beta, self.seed, self.preset, self.min_sigma = beta, seed, preset, min_sigma
        images = keras.Input((image_size, image_size, channels))
        if preset == "seed":
            features = keras.Sequential(conv_trunk(filters), name="trunk")(images)
            self.decoder = conv_decoder(image_size, channels, latent_dim, filters)
        else:
            features = residual_trunk(image_size, channels, filters)(images)
            self.decoder = residual_decoder(image_size, channels, latent_dim, filters, activation="linear")
        self.encoder = keras.Model(images, [layers.Dense(latent_dim, name="z_mean")(features),
                                            layers.Dense(latent_dim, name="z_log_var")(features)], name="encoder")
        self.noise = keras.random.SeedGenerator(seed)
        self.code_mean = self.add_weight(shape=(latent_dim,), initializer="zeros", trainable=False, name="code_mean")
        self.code_second_moment = self.add_weight(shape=(latent_dim, latent_dim), initializer="identity",
                                                  trainable=False, name="code_second_moment")
        self.pixel_noise = self.add_weight(shape=(channels,), initializer=keras.initializers.Constant(0.1),
                                           trainable=False, name="pixel_noise")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.build((None, image_size, image_size, channels))

    @property
    def gaussian(self) -> bool:
        """The residual preset's likelihood, with a fitted code distribution; the seed's is pixel BCE."""
        return self.preset != "seed"

    def call(self, images, training=False):
        """The reconstruction, the posterior (z_mean, z_log_var) and the code decoded: a sample of the posterior
        when training, else its mean."""
        z_mean, z_log_var = self.encoder(images, training=training)
        z = z_mean
        if training:
            # in z_mean's dtype, so the sum also works under a mixed (bfloat16 / float16) precision policy
            noise = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.noise)
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
        return self.decoder(z, training=training), z_mean, z_log_var, z

    def loss_terms(self, images, y_pred):
        """Per-batch means of -log p(x|z) and of the KL divergence to N(0, I), in nats per image."""
        reconstruction, z_mean, z_log_var, _ = (ops.cast(t, "float32") for t in y_pred)
        images = ops.convert_to_tensor(images, "float32")
        if self.gaussian:
            per_channel_mse = ops.mean(ops.square(images - reconstruction), axis=(0, 1, 2))
            variance = ops.maximum(per_channel_mse, self.min_sigma ** 2)
            pixels = self.image_size * self.image_size
            negative_log_likelihood = 0.5 * pixels * ops.sum(ops.log(2 * math.pi * variance)
                                                             + per_channel_mse / variance)
        else:
            negative_log_likelihood = ops.mean(ops.sum(
                keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2)) * self.channels)
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        return negative_log_likelihood, ops.mean(kl)

    def update_statistics(self, images, y_pred) -> None:
        """Moves the code mean, the codes' second moment and the pixel noise towards this training batch's."""
        reconstruction, _, _, z = (ops.cast(t, "float32") for t in y_pred)
        images = ops.convert_to_tensor(images, "float32")
        batch = ((self.code_mean, ops.mean(z, axis=0)),
                 (self.code_second_moment, ops.matmul(ops.transpose(z), z) / ops.cast(ops.shape(z)[0], "float32")),
                 (self.pixel_noise, ops.sqrt(ops.mean(ops.square(images - reconstruction), axis=(0, 1, 2)))))
        for variable, value in batch:
            variable.assign(MOMENTUM * variable + (1 - MOMENTUM) * value)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction_loss, kl_loss = self.loss_terms(x, y_pred)
        if training:
            self.update_statistics(x, y_pred)
        return reconstruction_loss + self.beta * kl_loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        reconstruction_loss, kl_loss = self.loss_terms(x, y_pred)
        batch_size = ops.shape(y_pred[0])[0]
        self.reconstruction_tracker.update_state(reconstruction_loss, sample_weight=batch_size)
        self.kl_tracker.update_state(kl_loss, sample_weight=batch_size)
        return self.get_metrics_result()

    def encode(self, images, batch_size: int = 256):
        """The posterior means (n, latent_dim): the deterministic embedding used for search."""
        return predict(self.encoder, images, batch_size)[0]

    def decode(self, vectors, batch_size: int = 256):
        """Images in [0, 1] from latent vectors: the likelihood's mean (clipped for the Gaussian's)."""
        return np.clip(super().decode(vectors, batch_size), 0.0, 1.0)

    def sample_codes(self, noise: np.ndarray) -> np.ndarray:
        """Codes from N(0, I) samples `noise` (n, latent_dim): mean + L·u under the codes' moving mean and
        covariance (the resnet preset), or the samples themselves (the seed's N(0, I) prior)."""
        if not self.gaussian:
            return noise.astype("float32")
        mean = ops.convert_to_numpy(self.code_mean).astype("float64")
        covariance = ops.convert_to_numpy(self.code_second_moment).astype("float64") - np.outer(mean, mean)
        eigenvalues, eigenvectors = np.linalg.eigh((covariance + covariance.T) / 2)
        root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))      # root @ root.T = covariance
        return (mean + noise @ root.T).astype("float32")

    def generate(self, n: int, seed: int = 0, batch_size: int = 256):
        """n images in [0, 1] decoded from N(0, I) samples drawn with `seed` (through `sample_codes`); with the
        Gaussian likelihood, plus its pixel noise."""
        rng = np.random.default_rng(seed)
        images = self.decode(self.sample_codes(rng.standard_normal((n, self.latent_dim))), batch_size)
        if not self.gaussian:
            return images
        noise = rng.standard_normal(images.shape).astype("float32") * ops.convert_to_numpy(self.pixel_noise)
        return np.clip(images + noise, 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "seed": self.seed, "preset": self.preset,
                "min_sigma": self.min_sigma}


@register("vae", world="galaxies", capabilities=("encode", "decode", "reconstruct", "generate"))
def vae(image_size: int = GALAXY_SIZE, channels: int = 3, latent_dim: int = 64, filters: int = 32, beta: float = 1.0,
        preset: str = "resnet", min_sigma: float = 0.15, seed: int = 0, learning_rate: float = 1e-3) -> VAE:
    """Residual convolutional VAE, calibrated Gaussian likelihood: generates galaxies from N(0, I)."""
    model = VAE(image_size, channels, latent_dim, filters, beta, seed, preset, min_sigma, name="vae")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
