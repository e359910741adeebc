"""A convolutional VAE on the autoencoder's trunk and decoder: it encodes to a Gaussian and generates from noise.

The loss (pixel binary cross-entropy summed over pixels + beta × KL) lives in `compute_loss`, and the two
terms are reported separately (`reconstruction_loss`, `kl_loss` in history.csv) through `compute_metrics`;
both are backend-agnostic, so the VAE trains with TensorFlow, JAX or PyTorch.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from zoo.autoencoder import LatentModel, conv_trunk
from zoo.registry import register


@keras.saving.register_keras_serializable(package="astrozoo")
class VAE(LatentModel):
    """Encoder → (z_mean, z_log_var) → reparameterised sample → decoder."""

    def __init__(self, image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                 beta: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        self.beta, self.seed = beta, seed
        images = keras.Input((image_size, image_size, channels))
        features = keras.Sequential(conv_trunk(filters), name="trunk")(images)
        self.encoder = keras.Model(images, [layers.Dense(latent_dim, name="z_mean")(features),
                                                 layers.Dense(latent_dim, name="z_log_var")(features)],
                                   name="encoder")
        self.noise = keras.random.SeedGenerator(seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.build((None, image_size, image_size, channels))

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        z = z_mean
        if training:
            # in z_mean's dtype, so the sum also works under a mixed (bfloat16 / float16) precision policy
            noise = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.noise)
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
        return self.decoder(z, training=training), z_mean, z_log_var

    def loss_terms(self, images, y_pred):
        """Per-batch mean of the summed pixel BCE and of the KL divergence to N(0, I)."""
        reconstruction, z_mean, z_log_var = y_pred
        images = ops.convert_to_tensor(images)
        bce = ops.sum(keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2)) * self.channels
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        return ops.mean(bce), ops.mean(kl)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction_loss, kl_loss = self.loss_terms(x, y_pred)
        return reconstruction_loss + self.beta * kl_loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        reconstruction_loss, kl_loss = self.loss_terms(x, y_pred)
        batch_size = ops.shape(y_pred[0])[0]
        self.reconstruction_tracker.update_state(reconstruction_loss, sample_weight=batch_size)
        self.kl_tracker.update_state(kl_loss, sample_weight=batch_size)
        return self.get_metrics_result()

    def encode(self, images, batch_size: int = 256):
        """The posterior means (n, latent_dim): the deterministic embedding used for search."""
        return self.encoder.predict(images, batch_size=batch_size, verbose=0)[0]

    def generate(self, n: int, seed: int = 0, batch_size: int = 256):
        """n images in [0, 1] decoded from standard-normal latent vectors drawn with `seed`."""
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype("float32")
        return self.decode(z, batch_size)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "seed": self.seed}


@register("vae", world="galaxies", capabilities=("encode", "decode", "reconstruct", "generate"))
def vae(image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32, beta: float = 1.0,
        seed: int = 0, learning_rate: float = 1e-3) -> VAE:
    """Convolutional VAE on the autoencoder's trunk: generates galaxies from Gaussian noise."""
    model = VAE(image_size, channels, latent_dim, filters, beta, seed, name="vae")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
