"""DCGAN (Radford et al., 2015) after the keras.io DCGAN example: a convolutional generator against a strided-conv
discriminator, with binary cross-entropy.

Generator: latent → 4×4 grid → [upsample 2×, conv 3×3, BatchNorm, ReLU] per doubling → tanh image. Upsampling
before a conv instead of a transposed conv avoids the checkerboard pattern (Odena et al., 2016), and the
BatchNorm statistics follow the training batches closely (momentum 0.9), so the per-epoch samples, drawn in
inference mode, show what the generator learned. Discriminator: [conv 4×4 stride 2, BatchNorm (not on the
first), LeakyReLU 0.2] down to 4×4, the minibatch standard deviation (a batch of identical fakes gives itself
away), dropout, one logit. The generator uses the non-saturating loss (-log D(G(z))); real images are labelled 0.9
(one-sided label smoothing) so the discriminator does not become certain too fast. Adam(4e-4, β1 = 0.5), twice
Radford's rate: with it, 5 epochs on 4,500 galaxies give varied galaxy shapes (docs/results/gans.md).
32-128 px is the intended range; any size from 8 px works (zoo.gan.growth_plan).
Trains on TensorFlow and JAX (see zoo/gan.py).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from core.worlds import GALAXY_SIZE
from zoo.gan import GAN, MinibatchStdDev, centre_margins, growth_plan, widths
from zoo.registry import register

REAL_LABEL = 0.9


def dcgan_generator(image_size: int, channels: int, latent_dim: int, filters: int) -> keras.Sequential:
    start, doublings = growth_plan("dcgan", image_size)
    channels_at = widths(filters, doublings)
    blocks = []
    for width in channels_at[1:-1]:
        blocks += [layers.UpSampling2D(2), layers.Conv2D(width, 3, padding="same", use_bias=False),
                   layers.BatchNormalization(momentum=0.9), layers.ReLU()]
    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(start * start * channels_at[0], use_bias=False),
        layers.BatchNormalization(momentum=0.9), layers.ReLU(),
        layers.Reshape((start, start, channels_at[0])),
        *blocks,
        layers.UpSampling2D(2), layers.Conv2D(channels, 3, padding="same", activation="tanh"),
        layers.Cropping2D(centre_margins(start * 2 ** doublings - image_size)),
    ], name="generator")


def dcgan_discriminator(image_size: int, channels: int, filters: int, dropout: float) -> keras.Sequential:
    start, doublings = growth_plan("dcgan", image_size)
    blocks = []
    for level, width in enumerate(reversed(widths(filters, doublings)[:-1])):
        blocks += [layers.Conv2D(width, 4, strides=2, padding="same", use_bias=level == 0)]
        blocks += [layers.LeakyReLU(0.2)] if level == 0 else [layers.BatchNormalization(), layers.LeakyReLU(0.2)]
    return keras.Sequential([
        keras.Input((image_size, image_size, channels)),
        layers.ZeroPadding2D(centre_margins(start * 2 ** doublings - image_size)),
        *blocks,
        MinibatchStdDev(),
        layers.Flatten(),
        layers.Dropout(dropout),
        layers.Dense(1),
    ], name="discriminator")


@keras.saving.register_keras_serializable(package="astrozoo")
class DCGAN(GAN):
    """Discriminator loss BCE(0.9, D(real)) + BCE(0, D(fake)); generator loss BCE(1, D(fake)), on logits."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int,
                 dropout: float, seed: int, **kwargs):
        super().__init__(image_size, channels, latent_dim, seed, **kwargs)
        self.filters, self.dropout = filters, dropout
        self.generator = dcgan_generator(image_size, channels, latent_dim, filters)
        self.discriminator = dcgan_discriminator(image_size, channels, filters, dropout)
        self.build()

    def discriminator_terms(self, real, fake, training=True) -> dict:
        real_logits, fake_logits = self.discriminate(real, training), self.discriminate(fake, training)
        real_loss = keras.losses.binary_crossentropy(ops.full_like(real_logits, REAL_LABEL), real_logits,
                                                     from_logits=True)
        fake_loss = keras.losses.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)
        return {"d_loss": ops.mean(real_loss) + ops.mean(fake_loss)}

    def generator_loss(self, fake, training=True):
        logits = self.discriminate(fake, training)
        return ops.mean(keras.losses.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout}


@register("dcgan", world="galaxies", capabilities=("generate",))
def dcgan(image_size: int = GALAXY_SIZE, channels: int = 3, latent_dim: int = 128, filters: int = 16,
          dropout: float = 0.2, seed: int = 0, learning_rate: float = 4e-4) -> DCGAN:
    """DCGAN with BCE loss, 32-128 px RGB or grayscale galaxies."""
    model = DCGAN(image_size, channels, latent_dim, filters, dropout, seed, name="dcgan")
    model.compile(generator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
                  discriminator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5))
    return model
