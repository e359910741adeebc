"""The Milky Way seed's CNN classifier, and a wider BatchNorm variant.

Seed preset (64×64×3, 5 classes: 155,013 parameters, as in the seed's summary table):
3 × [Conv 32 3×3 relu same → MaxPool 2 → Dropout], Flatten, Dense 64, Dropout, Dense 64, Dropout,
Dense n softmax. Its class probabilities are also the "scores" embedding for neighbour search.

Around the network, parameter-free layers make it hold on photographs it was not trained on
(zoo/observation.py): without `colour` it sees the intensity only (colour balance differs from one photograph to
the next far more than between galaxy types), `normalise` rescales each image by its own intensity percentiles
(in training and in use), and `random_views` shows it, in training only, each galaxy under a random seeing,
noise, brightness and display curve, so it cannot lean on one look of the sky.
"""
from __future__ import annotations

import keras
from keras import layers

from core.errors import ModelError
from core.worlds import GALAXY_SIZE
from zoo.inference import predict
from zoo.observation import STRETCH_PERCENTILES, GalaxyAugment, Greyscale, PercentileStretch
from zoo.registry import register

PRESETS = ("seed", "wide")
VIEW_OPTIONS = dict(shift=0.04, zoom=1.15, blur=1.0, noise=0.04, jitter=0.3, gamma=0.5)


def seed_cnn(image_size: int, channels: int, num_classes: int, dropout: float) -> keras.Sequential:
    """The seed's architecture, layer for layer."""
    blocks = []
    for _ in range(3):
        blocks += [layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                   layers.Dropout(dropout)]
    return keras.Sequential([
        keras.Input((image_size, image_size, channels)),
        *blocks,
        layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dropout(dropout),
        layers.Dense(64, activation="relu"), layers.Dropout(dropout),
        layers.Dense(num_classes, activation="softmax"),
    ], name="seed_cnn")


def wide_cnn(image_size: int, channels: int, num_classes: int, dropout: float) -> keras.Sequential:
    """A stronger option: wider conv blocks with BatchNorm and global average pooling."""
    blocks = []
    for filters in (32, 64, 128):
        blocks += [layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                   layers.Activation("relu"),
                   layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                   layers.Activation("relu"), layers.MaxPooling2D(2)]
    return keras.Sequential([
        keras.Input((image_size, image_size, channels)),
        *blocks,
        layers.GlobalAveragePooling2D(),
        layers.Dropout(dropout),
        layers.Dense(num_classes, activation="softmax"),
    ], name="wide_cnn")


@keras.saving.register_keras_serializable(package="astrozoo")
class Classifier(keras.Model):
    """Image → class probabilities; `classify` is the zoo capability."""

    def __init__(self, image_size: int, channels: int, num_classes: int, preset: str,
                 dropout: float, colour: bool, normalise: bool, random_views: bool, seed: int, **kwargs):
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ModelError(f"unknown classifier preset '{preset}'. Choose one of: {', '.join(PRESETS)}")
        if num_classes < 2:
            raise ModelError(f"the classifier needs at least 2 classes, got {num_classes}. "
                             "Use a labeled dataset with two or more classes")
        if image_size < 8:
            raise ModelError(f"the classifier needs an image size of at least 8 (it pools 2× three times), "
                             f"got {image_size}. Use --image-size 64")
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.preset, self.dropout = preset, dropout
        self.colour, self.normalise, self.random_views, self.seed = colour, normalise, random_views, seed
        self.greyscale = None if colour else Greyscale(name="greyscale")
        self.stretch = PercentileStretch(*STRETCH_PERCENTILES, name="stretch") if normalise else None
        self.views = GalaxyAugment(**VIEW_OPTIONS, seed=seed, name="views") if random_views else None
        self.net = (seed_cnn if preset == "seed" else wide_cnn)(image_size, channels, num_classes, dropout)
        self.build((None, image_size, image_size, channels))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=False):
        if training and self.views is not None:
            images = self.views(images)
        if self.greyscale is not None:
            images = self.greyscale(images)
        if self.stretch is not None:
            images = self.stretch(images)
        return self.net(images, training=training)

    def classify(self, images, batch_size: int = 256):
        """Class probabilities (n, num_classes) of images in [0, 1]."""
        return predict(self, images, batch_size)

    @classmethod
    def from_config(cls, config):
        """Runs saved before greyscale, the stretch and the random views existed load without them, as trained."""
        return cls(**{"colour": True, "normalise": False, "random_views": False, "seed": 0, **config})

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "num_classes": self.num_classes, "preset": self.preset, "dropout": self.dropout,
                "colour": self.colour, "normalise": self.normalise, "random_views": self.random_views,
                "seed": self.seed}


@register("classifier", world="galaxies", capabilities=("classify",))
def classifier(image_size: int = GALAXY_SIZE, channels: int = 3, num_classes: int = 5, preset: str = "seed",
               dropout: float = 0.2, colour: bool = False, normalise: bool = True, random_views: bool = True,
               seed: int = 0, learning_rate: float = 1e-3, epochs: int = 10, steps_per_epoch: int = 100
               ) -> Classifier:
    """The seed's 64×64 CNN galaxy classifier (preset 'wide': BatchNorm variant) on each image's own stretch of its
    intensity, trained on random views of the sky; Adam whose learning rate falls along a cosine to 5% over the
    run, so the last epochs settle instead of jumping between minima."""
    model = Classifier(image_size, channels, num_classes, preset, dropout, colour, normalise, random_views, seed,
                       name="classifier")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps_per_epoch, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
