"""The Milky Way seed's convolutional autoencoder (64×64×3 → 64-d latent → 64×64×3, 132,611 parameters), and a
residual one; the encoders and decoders of both are shared with the VAE.

Preset `seed` (default), the seed's layers: encoder 4 × [Conv 32 3×3 relu same → MaxPool 2], Flatten, Dense
latent; decoder Dense, Reshape, 4 × ConvTranspose 32 3×3 stride 2 relu, Conv 3×3 sigmoid.
Preset `resnet`: a residual encoder (a residual block and a strided convolution per halving) and a decoder of
residual up-blocks (nearest upsampling, a 3×3 convolution and a residual block per doubling), as in the VAEs of
NVAE or Stable Diffusion, narrow enough to train on a CPU in minutes.
The loss is written in `compute_loss`, so the model trains on (images, labels) batches on any backend.
It is pixel binary cross-entropy by default: with pixel MSE the sigmoid output of these mostly dark images
saturates at black within an epoch and its gradient vanishes, so the seed architecture learns nothing
(loss flat at 0.025 from epoch 2 on synthetic galaxies); `loss="mse"` keeps the plain MSE.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from core.errors import ModelError
from core.worlds import GALAXY_SIZE
from zoo.inference import predict
from zoo.registry import register

DOWNSAMPLINGS = 4
LOSSES = ("bce", "mse")
PRESETS = ("seed", "resnet")


def check_image_size(model: str, image_size: int) -> None:
    step = 2 ** DOWNSAMPLINGS
    if image_size < step or image_size % step:
        raise ModelError(f"{model} needs an image size that is a multiple of {step}, got {image_size}. "
                         f"Use --image-size {max(step, image_size // step * step)}")


def conv_trunk(filters: int) -> list[keras.Layer]:
    """The seed's encoder body: image → flat features of (image_size/16)² × filters."""
    blocks: list[keras.Layer] = []
    for _ in range(DOWNSAMPLINGS):
        blocks += [layers.Conv2D(filters, 3, padding="same", activation="relu"), layers.MaxPooling2D(2)]
    return blocks + [layers.Flatten()]


def conv_decoder(image_size: int, channels: int, latent_dim: int, filters: int) -> keras.Sequential:
    """Latent vector → image in [0, 1], mirroring the trunk with strided transposed convolutions."""
    side = image_size // 2 ** DOWNSAMPLINGS
    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(side * side * filters, activation="relu"),
        layers.Reshape((side, side, filters)),
        *[layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")
          for _ in range(DOWNSAMPLINGS)],
        layers.Conv2D(channels, 3, padding="same", activation="sigmoid"),
    ], name="decoder")


def residual_block(x, filters: int, name: str):
    """x + conv(silu(conv(silu(x)))): two 3×3 convolutions that learn a correction to their input."""
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(layers.Activation("silu")(x))
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(layers.Activation("silu")(y))
    return layers.Add(name=f"{name}_add")([x, y])


def level_widths(filters: int) -> list[int]:
    """Channels per resolution of the residual networks, full size first: filters/2, filters, then 2 × filters."""
    return [filters * min(2 ** level, 4) // 2 for level in range(DOWNSAMPLINGS + 1)]


def residual_trunk(image_size: int, channels: int, filters: int) -> keras.Model:
    """Image → flat features of (image_size/16)² × 2·filters: a stem convolution, then per halving a residual
    block and a strided 3×3 convolution, and a residual block at the bottom."""
    widths = level_widths(filters)
    images = keras.Input((image_size, image_size, channels))
    x = layers.Conv2D(widths[0], 3, padding="same", name="stem")(images)
    for level in range(1, DOWNSAMPLINGS + 1):
        x = residual_block(x, widths[level - 1], f"down{level}")
        x = layers.Conv2D(widths[level], 3, strides=2, padding="same", name=f"down{level}_stride")(x)
    x = residual_block(x, widths[-1], "bottom")
    return keras.Model(images, layers.Flatten()(layers.Activation("silu")(x)), name="trunk")


def residual_decoder(image_size: int, channels: int, latent_dim: int, filters: int,
                     activation: str = "sigmoid") -> keras.Model:
    """Latent vector → image: a dense layer to the smallest grid, a residual block, then per doubling an up-block
    (nearest upsampling, 3×3 convolution, residual block), and a 3×3 convolution to the channels (`activation`:
    sigmoid for images in [0, 1], linear for a Gaussian's mean, whose gradient a saturated sigmoid would stop)."""
    widths = level_widths(filters)
    side = image_size // 2 ** DOWNSAMPLINGS
    z = keras.Input((latent_dim,))
    x = layers.Reshape((side, side, widths[-1]))(layers.Dense(side * side * widths[-1], name="project")(z))
    x = residual_block(x, widths[-1], "bottom")
    for level in range(DOWNSAMPLINGS - 1, -1, -1):
        x = layers.UpSampling2D(2, name=f"up{level}_resize")(x)
        x = layers.Conv2D(widths[level], 3, padding="same", name=f"up{level}_conv")(x)
        x = residual_block(x, widths[level], f"up{level}")
    x = layers.Activation("silu")(x)
    images = layers.Conv2D(channels, 3, padding="same", activation=activation, dtype="float32", name="to_image")(x)
    return keras.Model(z, images, name="decoder")


def check_preset(model: str, preset: str) -> None:
    if preset not in PRESETS:
        raise ModelError(f"unknown {model} preset '{preset}'. Choose one of: {', '.join(PRESETS)}")


class LatentModel(keras.Model):
    """What the autoencoder and the VAE share: an encoder to a vector, a decoder back (both set by the subclass), and
    their capabilities."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int, **kwargs):
        super().__init__(**kwargs)
        check_image_size(type(self).__name__.lower(), image_size)
        self.image_size, self.channels, self.latent_dim, self.filters = image_size, channels, latent_dim, filters

    def build(self, input_shape):
        self.built = True

    def encode(self, images, batch_size: int = 256):
        """Latent vectors (n, latent_dim) of images in [0, 1]."""
        return predict(self.encoder, images, batch_size)

    def decode(self, vectors, batch_size: int = 256):
        """Images in [0, 1] from latent vectors."""
        return self.decoder.predict(vectors, batch_size=batch_size, verbose=0)

    def reconstruct(self, images, batch_size: int = 256):
        return self.decode(self.encode(images, batch_size), batch_size)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "filters": self.filters}


@keras.saving.register_keras_serializable(package="astrozoo")
class Autoencoder(LatentModel):
    """Deterministic conv autoencoder trained to reproduce its input (pixel BCE or MSE)."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int,
                 loss: str, preset: str, **kwargs):
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        if loss not in LOSSES:
            raise ModelError(f"unknown autoencoder loss '{loss}'. Choose one of: {', '.join(LOSSES)}")
        check_preset("autoencoder", preset)
        self.loss_name, self.preset = loss, preset
        images = keras.Input((image_size, image_size, channels))
        if preset == "seed":
            self.decoder = conv_decoder(image_size, channels, latent_dim, filters)
            self.encoder = keras.Sequential([images, *conv_trunk(filters), layers.Dense(latent_dim)], name="encoder")
        else:
            self.decoder = residual_decoder(image_size, channels, latent_dim, filters)
            self.encoder = keras.Sequential([images, residual_trunk(image_size, channels, filters),
                                             layers.Dense(latent_dim)], name="encoder")
        self.build((None, image_size, image_size, channels))

    def call(self, images, training=False):
        return self.decoder(self.encoder(images, training=training), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean pixel BCE (or MSE) against the input; the labels in the batch are ignored."""
        images = ops.convert_to_tensor(x)
        if self.loss_name == "mse":
            return ops.mean(ops.square(images - y_pred))
        return ops.mean(keras.losses.binary_crossentropy(images, y_pred))

    def get_config(self):
        return {**super().get_config(), "loss": self.loss_name, "preset": self.preset}


@register("autoencoder", world="galaxies", capabilities=("encode", "decode", "reconstruct"))
def autoencoder(image_size: int = GALAXY_SIZE, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                loss: str = "bce", preset: str = "seed", learning_rate: float = 1e-3) -> Autoencoder:
    """The seed's convolutional autoencoder with a 64-d latent space (preset 'resnet': residual variant)."""
    model = Autoencoder(image_size, channels, latent_dim, filters, loss, preset, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
