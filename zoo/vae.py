"""A convolutional VAE that generates galaxies from N(0, I) and keeps their shape when it reconstructs them.

Preset `resnet` (default): the residual encoder and decoder of zoo/autoencoder.py, with a Gaussian likelihood.
Its standard deviation σ is the batch's own reconstruction RMS per channel (the "σ-VAE" of Rybkin et al. 2021),
-log p(x|z) = D/2·log(2π·σ²) + D/2 with σ² = MSE, but never below `min_sigma`. The galaxies are mostly dark sky,
where the seed's pixel BCE is nearly flat: it blurred every galaxy into a round blob with a 22-nat latent. A
Gaussian weighs pixel errors by how well the model reconstructs; the floor keeps that weight from growing so
large that the latent becomes a lookup table whose codes N(0, I) samples miss.

A VAE's codes of the training images must also fill N(0, I), or its samples fall where no code was: with a
strong decoder and 1,000 steps they do not (the codes' variance was 0.3 per component), so a maximum mean
discrepancy between the batch's codes and prior samples (InfoVAE, Zhao et al. 2017; WAE-MMD) is added with
weight `mmd_weight`.

`generate` decodes N(0, I) samples and adds the likelihood's pixel noise (a moving average of the reconstruction
RMS, like BatchNorm's moving statistics): real images have sky noise, and a VAE sample is mean plus noise.

Preset `seed` is the original model: the autoencoder's seed trunk and decoder, pixel BCE + β·KL.

Losses live in `compute_loss` with keras.ops, and the terms (`reconstruction_loss` and `kl_loss` in nats per
image, `mmd`) are reported through `compute_metrics`, so the VAE trains with TensorFlow or JAX.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from zoo.autoencoder import LatentModel, check_preset, conv_decoder, conv_trunk, residual_decoder, residual_trunk
from zoo.registry import register

MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)   # kernel widths, in units of 2 × the latent dimension
NOISE_MOMENTUM = 0.99        # of the moving reconstruction RMS that `generate` adds as pixel noise


def mmd(samples, prior_samples):
    """Unbiased maximum mean discrepancy between two equal batches of vectors, with inverse multiquadratic
    kernels at several widths (Tolstikhin et al. 2018): about 0 when both come from one distribution."""
    n, dimension = ops.cast(ops.shape(samples)[0], "float32"), ops.cast(ops.shape(samples)[1], "float32")

    def kernel_sum(a, b):
        squared = ops.sum(ops.square(a[:, None, :] - b[None, :, :]), axis=-1)
        return ops.sum(sum(2 * dimension * s / (2 * dimension * s + squared) for s in MMD_SCALES))

    # within one batch, each vector's kernel with itself (1 per width) is left out
    within = kernel_sum(samples, samples) + kernel_sum(prior_samples, prior_samples) - 2 * n * len(MMD_SCALES)
    return within / (n * (n - 1)) - 2 * kernel_sum(samples, prior_samples) / (n * n)


@keras.saving.register_keras_serializable(package="astrozoo")
class VAE(LatentModel):
    """Encoder → (z_mean, z_log_var) → reparameterised sample → decoder."""

    def __init__(self, image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                 beta: float = 1.0, seed: int = 0, preset: str = "seed", min_sigma: float = 0.0,
                 mmd_weight: float = 0.0, **kwargs):
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        check_preset("vae", preset)
        self.beta, self.seed, self.preset, self.min_sigma, self.mmd_weight = beta, seed, preset, min_sigma, mmd_weight
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
        self.pixel_noise = self.add_weight(shape=(channels,), initializer=keras.initializers.Constant(0.1),
                                           trainable=False, name="pixel_noise")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.mmd_tracker = keras.metrics.Mean(name="mmd")
        self.build((None, image_size, image_size, channels))

    @property
    def gaussian(self) -> bool:
        """The residual preset's likelihood; the seed's is pixel BCE."""
        return self.preset != "seed"

    def call(self, images, training=False):
        """The reconstruction, the posterior (z_mean, z_log_var), the code decoded (a sample of the posterior when
        training, else its mean) and as many N(0, I) samples to measure the codes' MMD against."""
        z_mean, z_log_var = self.encoder(images, training=training)
        # in z_mean's dtype, so the sum also works under a mixed (bfloat16 / float16) precision policy
        prior_samples = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.noise)
        z = z_mean
        if training:
            noise = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.noise)
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
        return self.decoder(z, training=training), z_mean, z_log_var, z, prior_samples

    def loss_terms(self, images, y_pred):
        """Per-batch -log p(x|z) and KL divergence to N(0, I) (means in nats per image), the MMD of the sampled
        codes to N(0, I), and the reconstruction RMS per channel."""
        reconstruction, z_mean, z_log_var, z, prior_samples = (ops.cast(t, "float32") for t in y_pred)
        images = ops.convert_to_tensor(images, "float32")
        per_channel_mse = ops.mean(ops.square(images - reconstruction), axis=(0, 1, 2))
        if self.gaussian:
            variance = ops.maximum(per_channel_mse, self.min_sigma ** 2)
            pixels = self.image_size * self.image_size
            negative_log_likelihood = 0.5 * pixels * ops.sum(ops.log(2 * math.pi * variance)
                                                             + per_channel_mse / variance)
        else:
            negative_log_likelihood = ops.mean(ops.sum(
                keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2)) * self.channels)
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        return negative_log_likelihood, ops.mean(kl), mmd(z, prior_samples), ops.sqrt(per_channel_mse)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction_loss, kl_loss, discrepancy, rms = self.loss_terms(x, y_pred)
        if training:
            self.pixel_noise.assign(NOISE_MOMENTUM * self.pixel_noise + (1 - NOISE_MOMENTUM) * rms)
        return reconstruction_loss + self.beta * kl_loss + self.mmd_weight * discrepancy

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        reconstruction_loss, kl_loss, discrepancy, _ = self.loss_terms(x, y_pred)
        batch_size = ops.shape(y_pred[0])[0]
        for tracker, value in ((self.reconstruction_tracker, reconstruction_loss), (self.kl_tracker, kl_loss),
                               (self.mmd_tracker, discrepancy)):
            tracker.update_state(value, sample_weight=batch_size)
        return self.get_metrics_result()

    def encode(self, images, batch_size: int = 256):
        """The posterior means (n, latent_dim): the deterministic embedding used for search."""
        return self.encoder.predict(images, batch_size=batch_size, verbose=0)[0]

    def decode(self, vectors, batch_size: int = 256):
        """Images in [0, 1] from latent vectors: the likelihood's mean (clipped for the Gaussian's)."""
        return np.clip(super().decode(vectors, batch_size), 0.0, 1.0)

    def generate(self, n: int, seed: int = 0, batch_size: int = 256):
        """n images in [0, 1] decoded from standard-normal latent vectors drawn with `seed`; with the Gaussian
        likelihood, plus its pixel noise."""
        rng = np.random.default_rng(seed)
        images = self.decode(rng.standard_normal((n, self.latent_dim)).astype("float32"), batch_size)
        if not self.gaussian:
            return images
        noise = rng.standard_normal(images.shape).astype("float32") * ops.convert_to_numpy(self.pixel_noise)
        return np.clip(images + noise, 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "seed": self.seed, "preset": self.preset,
                "min_sigma": self.min_sigma, "mmd_weight": self.mmd_weight}


@register("vae", world="galaxies", capabilities=("encode", "decode", "reconstruct", "generate"))
def vae(image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32, beta: float = 1.0,
        preset: str = "resnet", min_sigma: float = 0.15, mmd_weight: float = 1000.0, seed: int = 0,
        learning_rate: float = 1e-3) -> VAE:
    """Residual convolutional VAE, calibrated Gaussian likelihood: generates galaxies from N(0, I)."""
    model = VAE(image_size, channels, latent_dim, filters, beta, seed, preset, min_sigma, mmd_weight, name="vae")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
