"""A convolutional VAE that generates galaxies from N(0, I) and keeps their shape when it reconstructs them.

Default preset `resnet`: a residual encoder (strided convolutions) and a residual decoder of up-blocks (nearest
upsampling, a 3×3 convolution and a residual block per doubling), as in the VAEs of NVAE or Stable Diffusion,
scaled to train on a CPU in minutes.

The likelihood is a Gaussian whose standard deviation is the batch's own reconstruction RMS per channel (the
"σ-VAE" of Rybkin et al. 2021): -log p(x|z) = D/2·log(2π·σ²) + D/2 with σ² = MSE. σ never goes below
`min_sigma`.

Losses live in `compute_loss` with keras.ops and the terms (`reconstruction_loss`, `kl_loss`, in nats per
image) are reported through `compute_metrics`, so the VAE trains with TensorFlow or JAX.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from zoo.autoencoder import DOWNSAMPLINGS, LatentModel, conv_decoder, conv_trunk
from zoo.registry import ModelError, register

PRESETS = ("resnet", "seed")
LIKELIHOODS = ("gaussian", "bce")
MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def residual_block(x, filters: int, name: str):
    """x + conv(act(conv(act(x)))): two 3×3 convolutions that learn a correction to their input."""
    y = layers.Activation("silu", name=f"{name}_act1")(x)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(y)
    y = layers.Activation("silu", name=f"{name}_act2")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def level_widths(filters: int) -> list[int]:
    """Channels per resolution, full size first: doubling twice, then level (filters, 2f, 4f, 4f, 4f)."""
    return [filters * min(2 ** level, 4) for level in range(DOWNSAMPLINGS + 1)]


def residual_encoder(image_size: int, channels: int, latent_dim: int, filters: int) -> keras.Model:
    """Image → (z_mean, z_log_var): a stem, then per halving a residual block and a strided convolution."""
    widths = level_widths(filters)
    images = keras.Input((image_size, image_size, channels))
    x = layers.Conv2D(widths[0], 3, padding="same", name="stem")(images)
    for level, width in enumerate(widths[1:], start=1):
        x = residual_block(x, widths[level - 1], f"down{level}")
        x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{level}_stride")(x)
    x = residual_block(x, widths[-1], "bottom")
    x = layers.Flatten()(layers.Activation("silu")(x))
    return keras.Model(images, [layers.Dense(latent_dim, name="z_mean")(x),
                                layers.Dense(latent_dim, name="z_log_var")(x)], name="encoder")


def residual_decoder(image_size: int, channels: int, latent_dim: int, filters: int, output: str) -> keras.Model:
    """Latent vector → image: a dense layer to the smallest grid, then per doubling an up-block (nearest
    upsampling, 3×3 convolution, residual block), and a 3×3 convolution to the channels with `output` activation."""
    widths = level_widths(filters)
    side = image_size // 2 ** DOWNSAMPLINGS
    z = keras.Input((latent_dim,))
    x = layers.Dense(side * side * widths[-1], name="project")(z)
    x = layers.Reshape((side, side, widths[-1]))(x)
    x = residual_block(x, widths[-1], "bottom")
    for level in range(DOWNSAMPLINGS - 1, -1, -1):
        x = layers.UpSampling2D(2, name=f"up{level}_resize")(x)
        x = layers.Conv2D(widths[level], 3, padding="same", name=f"up{level}_conv")(x)
        x = residual_block(x, widths[level], f"up{level}")
    x = layers.Activation("silu")(x)
    outputs = layers.Conv2D(channels, 3, padding="same", activation=output, dtype="float32", name="to_image")(x)
    return keras.Model(z, outputs, name="decoder")


def mmd(samples, prior_samples):
    """Maximum mean discrepancy between two batches of vectors, with inverse multiquadratic kernels at several
    scales (Tolstikhin et al.'s WAE-MMD): 0 when both come from one distribution."""
    dimension = ops.cast(ops.shape(samples)[1], "float32")

    def kernel(a, b):
        squared = ops.sum(ops.square(a[:, None, :] - b[None, :, :]), axis=-1)
        return sum(2 * dimension * s / (2 * dimension * s + squared) for s in MMD_SCALES)

    return (ops.mean(kernel(samples, samples)) + ops.mean(kernel(prior_samples, prior_samples))
            - 2 * ops.mean(kernel(samples, prior_samples)))


@keras.saving.register_keras_serializable(package="astrozoo")
class VAE(LatentModel):
    """Encoder → (z_mean, z_log_var) → reparameterised sample → decoder."""

    def __init__(self, image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                 beta: float = 1.0, seed: int = 0, preset: str = "seed", likelihood: str = "bce",
                 min_sigma: float = 0.0, kl_warmup_steps: int = 0, mmd_weight: float = 0.0, **kwargs):
        if preset not in PRESETS:
            raise ModelError(f"unknown vae preset '{preset}'. Choose one of: {', '.join(PRESETS)}")
        if likelihood not in LIKELIHOODS:
            raise ModelError(f"unknown vae likelihood '{likelihood}'. Choose one of: {', '.join(LIKELIHOODS)}")
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        self.beta, self.seed, self.preset, self.likelihood = beta, seed, preset, likelihood
        self.min_sigma, self.kl_warmup_steps, self.mmd_weight = min_sigma, kl_warmup_steps, mmd_weight
        if preset == "seed":
            images = keras.Input((image_size, image_size, channels))
            features = keras.Sequential(conv_trunk(filters), name="trunk")(images)
            self.encoder = keras.Model(images, [layers.Dense(latent_dim, name="z_mean")(features),
                                                layers.Dense(latent_dim, name="z_log_var")(features)],
                                       name="encoder")
            self.decoder = conv_decoder(image_size, channels, latent_dim, filters)
        else:
            self.encoder = residual_encoder(image_size, channels, latent_dim, filters)
            # a Gaussian's mean is linear: a sigmoid saturated at the dark sky would stop its gradient
            self.decoder = residual_decoder(image_size, channels, latent_dim, filters,
                                            "sigmoid" if likelihood == "bce" else "linear")
        self.noise = keras.random.SeedGenerator(seed)
        self.train_steps = self.add_weight(shape=(), initializer="zeros", trainable=False, name="train_steps")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.mmd_tracker = keras.metrics.Mean(name="mmd")
        self.build((None, image_size, image_size, channels))

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        z = z_mean
        if training:
            # in z_mean's dtype, so the sum also works under a mixed (bfloat16 / float16) precision policy
            noise = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.noise)
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
        return self.decoder(z, training=training), z_mean, z_log_var, z

    def loss_terms(self, images, y_pred):
        """Per-batch means of -log p(x|z) and of the KL divergence to N(0, I) in nats per image, and the MMD."""
        reconstruction, z_mean, z_log_var, z = (ops.cast(t, "float32") for t in y_pred)
        images = ops.convert_to_tensor(images, "float32")
        if self.likelihood == "bce":
            negative_log_likelihood = ops.mean(ops.sum(
                keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2)) * self.channels)
        else:
            per_channel_mse = ops.mean(ops.square(images - reconstruction), axis=(0, 1, 2))
            variance = ops.maximum(per_channel_mse, self.min_sigma ** 2)
            pixels = self.image_size * self.image_size
            negative_log_likelihood = 0.5 * pixels * ops.sum(ops.log(2 * math.pi * variance) + per_channel_mse / variance)
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        prior = keras.random.normal(ops.shape(z), seed=self.noise)
        return negative_log_likelihood, ops.mean(kl), mmd(z, prior)

    def kl_weight(self):
        """β, ramped up linearly over the first `kl_warmup_steps` train steps."""
        if not self.kl_warmup_steps:
            return self.beta
        return self.beta * ops.minimum(1.0, self.train_steps / self.kl_warmup_steps)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction_loss, kl_loss, discrepancy = self.loss_terms(x, y_pred)
        loss = reconstruction_loss + self.kl_weight() * kl_loss + self.mmd_weight * discrepancy
        if training:
            self.train_steps.assign(self.train_steps + 1)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        reconstruction_loss, kl_loss, discrepancy = self.loss_terms(x, y_pred)
        batch_size = ops.shape(y_pred[0])[0]
        self.reconstruction_tracker.update_state(reconstruction_loss, sample_weight=batch_size)
        self.kl_tracker.update_state(kl_loss, sample_weight=batch_size)
        self.mmd_tracker.update_state(discrepancy, sample_weight=batch_size)
        return self.get_metrics_result()

    def decode(self, vectors, batch_size: int = 256):
        """Images in [0, 1] from latent vectors: the likelihood's mean, clipped."""
        return np.clip(super().decode(vectors, batch_size), 0.0, 1.0)

    def encode(self, images, batch_size: int = 256):
        """The posterior means (n, latent_dim): the deterministic embedding used for search."""
        return self.encoder.predict(images, batch_size=batch_size, verbose=0)[0]

    def generate(self, n: int, seed: int = 0, batch_size: int = 256):
        """n images in [0, 1] decoded from standard-normal latent vectors drawn with `seed`."""
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype("float32")
        return self.decode(z, batch_size)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "seed": self.seed, "preset": self.preset,
                "likelihood": self.likelihood, "min_sigma": self.min_sigma, "kl_warmup_steps": self.kl_warmup_steps,
                "mmd_weight": self.mmd_weight}


@register("vae", world="galaxies", capabilities=("encode", "decode", "reconstruct", "generate"))
def vae(image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 16, beta: float = 1.0,
        preset: str = "resnet", likelihood: str = "gaussian", min_sigma: float = 0.0, kl_warmup_steps: int = 0,
        mmd_weight: float = 0.0, seed: int = 0, learning_rate: float = 1e-3) -> VAE:
    """Residual convolutional VAE with a calibrated Gaussian likelihood: generates galaxies from N(0, I)."""
    model = VAE(image_size, channels, latent_dim, filters, beta, seed, preset, likelihood, min_sigma,
                kl_warmup_steps, mmd_weight, name="vae")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
