"""The Milky Way seed's convolutional autoencoder (64×64×3 → 64-d latent → 64×64×3, 132,611 parameters).

Encoder: 4 × [Conv 32 3×3 relu same → MaxPool 2], Flatten, Dense latent. Decoder: Dense, Reshape,
4 × ConvTranspose 32 3×3 stride 2 relu, Conv 3×3 sigmoid. The trunk and decoder are shared with the VAE.
The loss is written in `compute_loss`, so the model trains on (images, labels) batches on any backend.
It is pixel binary cross-entropy by default: with pixel MSE the sigmoid output of these mostly dark images
saturates at black within an epoch and its gradient vanishes, so the seed architecture learns nothing
(loss flat at 0.025 from epoch 2 on synthetic galaxies); `loss="mse"` keeps the plain MSE.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from zoo.registry import ModelError, register

DOWNSAMPLINGS = 4
LOSSES = ("bce", "mse")


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
        return self.encoder.predict(images, batch_size=batch_size, verbose=0)

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

    def __init__(self, image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                 loss: str = "bce", **kwargs):
        super().__init__(image_size, channels, latent_dim, filters, **kwargs)
        if loss not in LOSSES:
            raise ModelError(f"unknown autoencoder loss '{loss}'. Choose one of: {', '.join(LOSSES)}")
        self.loss_name = loss
        self.decoder = conv_decoder(image_size, channels, latent_dim, filters)
        self.encoder = keras.Sequential([keras.Input((image_size, image_size, channels)), *conv_trunk(filters),
                                         layers.Dense(latent_dim)],
                                        name="encoder")
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
        return {**super().get_config(), "loss": self.loss_name}


@register("autoencoder", world="galaxies", capabilities=("encode", "decode", "reconstruct"))
def autoencoder(image_size: int = 64, channels: int = 3, latent_dim: int = 64, filters: int = 32,
                loss: str = "bce", learning_rate: float = 1e-3) -> Autoencoder:
    """The seed's convolutional autoencoder with a 64-d latent space."""
    model = Autoencoder(image_size, channels, latent_dim, filters, loss, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model
