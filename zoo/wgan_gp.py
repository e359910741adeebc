"""WGAN-GP: a Wasserstein critic with gradient penalty (Gulrajani et al., 2017), after the keras.io WGAN-GP example.

The critic scores images without a sigmoid; it is trained `n_critic` times per generator step to widen the score
gap between real and generated images, while a penalty keeps its gradient norm near 1 (the 1-Lipschitz
constraint, with no batch normalization in the critic). The star-field seed turned to it after a plain DCGAN
collapsed on 30×30 star patches, so any size from 8 px works: 30 px is generated at 32 and cropped.
Trains on TensorFlow and JAX (see zoo/gan.py).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from core.worlds import GALAXY_SIZE
from zoo.gan import GAN, centre_margins, growth_plan, widths
from zoo.registry import register


def wgan_generator(image_size: int, channels: int, latent_dim: int, filters: int) -> keras.Sequential:
    """Latent → start×start grid → [upsample 2×, conv 3×3, BatchNorm, LeakyReLU] per doubling → tanh image."""
    start, doublings = growth_plan("wgan-gp", image_size)
    channels_at = widths(filters, doublings)
    blocks = []
    for width in channels_at[1:]:
        blocks += [layers.UpSampling2D(2), layers.Conv2D(width, 3, padding="same", use_bias=False),
                   layers.BatchNormalization(), layers.LeakyReLU(0.2)]
    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(start * start * channels_at[0], use_bias=False),
        layers.BatchNormalization(), layers.LeakyReLU(0.2),
        layers.Reshape((start, start, channels_at[0])),
        *blocks,
        layers.Conv2D(channels, 3, padding="same", activation="tanh"),
        layers.Cropping2D(centre_margins(start * 2 ** doublings - image_size)),
    ], name="generator")


def wgan_critic(image_size: int, channels: int, filters: int) -> keras.Sequential:
    """Image → one unbounded score: strided 5×5 convs with LeakyReLU down to the generator's start size."""
    start, doublings = growth_plan("wgan-gp", image_size)
    return keras.Sequential([
        keras.Input((image_size, image_size, channels)),
        layers.ZeroPadding2D(centre_margins(start * 2 ** doublings - image_size)),
        *[block for width in reversed(widths(filters, doublings)[:-1])
          for block in (layers.Conv2D(width, 5, strides=2, padding="same"), layers.LeakyReLU(0.2))],
        layers.Flatten(),
        layers.Dense(1),
    ], name="critic")


@keras.saving.register_keras_serializable(package="astrozoo")
class WGANGP(GAN):
    """Critic loss E[D(fake)] - E[D(real)] + λ·GP; generator loss -E[D(fake)]."""

    loss_names = ("d_loss", "g_loss", "gradient_penalty")

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int,
                 n_critic: int, gp_weight: float, seed: int, **kwargs):
        super().__init__(image_size, channels, latent_dim, seed, **kwargs)
        self.filters, self.n_critic, self.gp_weight = filters, n_critic, gp_weight
        self.critic_steps = n_critic
        self.generator = wgan_generator(image_size, channels, latent_dim, filters)
        self.discriminator = wgan_critic(image_size, channels, filters)
        self.build()

    def discriminator_terms(self, real, fake, training=True) -> dict:
        penalty = self.gradient_penalty(real, fake, training=training)
        distance = ops.mean(self.discriminate(fake, training)) - ops.mean(self.discriminate(real, training))
        return {"d_loss": distance + self.gp_weight * penalty, "gradient_penalty": penalty}

    def generator_loss(self, fake, training=True):
        return -ops.mean(self.discriminate(fake, training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "n_critic": self.n_critic, "gp_weight": self.gp_weight}


@register("wgan-gp", world="galaxies", capabilities=("generate",))
def wgan_gp(image_size: int = GALAXY_SIZE, channels: int = 3, latent_dim: int = 128, filters: int = 32,
            n_critic: int = 5, gp_weight: float = 10.0, seed: int = 0, learning_rate: float = 1e-4) -> WGANGP:
    """Wasserstein GAN with gradient penalty; any size from 8 px (the seed's 30×30 star patches)."""
    model = WGANGP(image_size, channels, latent_dim, filters, n_critic, gp_weight, seed, name="wgan_gp")
    model.compile(generator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.9),
                  discriminator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.9))
    return model
