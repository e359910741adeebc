"""SimCLR: a galaxy encoder learned without labels (Chen et al. 2020; Hayat et al. 2021 on SDSS galaxies).

Each image is augmented twice; the encoder and a small projection head map both views to vectors, and the
NT-Xent loss pulls the two views of one galaxy together while pushing them away from every other image in the
batch. The augmentations randomise what should not matter for "which galaxies look alike" (orientation, a
small shift, size, seeing, noise, brightness, colour and display curve), so what two views of one galaxy share and other
galaxies do not is its structure: bars, arms, edge-on discs, tidal tails. `encode` returns the encoder's
pooled features, before the projection head, which keeps more of that information (Chen et al., Sec. 4.2).

Blocks, top to bottom (the views, `GalaxyAugment`, and each image's own stretch, `PercentileStretch`, live in
zoo/observation.py): `conv_encoder` (residual conv stages with BatchNorm, global average pool), `projection_head`
(MLP), `nt_xent` (the loss, keras.ops), the `SimCLR` model and its builder. Labels in the batches are ignored,
so it trains on any source, labeled or not.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from core.errors import ModelError
from core.worlds import GALAXY_SIZE
from zoo.inference import predict
from zoo.observation import STRETCH_PERCENTILES, GalaxyAugment, Greyscale, PercentileStretch
from zoo.registry import register

STAGES = 4   # the encoder halves the image STAGES times: 64 px → 4 px


def batch_norm() -> layers.BatchNormalization:
    """BatchNorm whose moving statistics, used by `encode`, follow the training ones within a few dozen steps
    (Keras' default momentum 0.99 needs hundreds: a 15-step epoch would leave `encode` on the initial ones)."""
    return layers.BatchNormalization(momentum=0.9)


def residual_block(x, filters: int, stride: int):
    """Two 3×3 convolutions with BatchNorm and a shortcut (1×1 when the shape changes), as in ResNet."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = batch_norm()(shortcut)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return layers.Activation("relu")(layers.Add()([x, shortcut]))


def conv_encoder(image_size: int, channels: int, feature_dim: int, normalise: bool, colour: bool) -> keras.Model:
    """Image → `feature_dim` pooled features: without `colour` the intensity alone, with `normalise` each image's
    own percentile stretch, then a strided stem, STAGES residual stages that double the filters up to `feature_dim`
    (and, after the first, halve the side), and global average pooling."""
    width = feature_dim // 2 ** (STAGES - 1)
    inputs = keras.Input((image_size, image_size, channels))
    x = inputs if colour else Greyscale(name="greyscale")(inputs)
    x = PercentileStretch(*STRETCH_PERCENTILES, name="stretch")(x) if normalise else x
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.Activation("relu")(batch_norm()(x))
    for stage in range(STAGES):
        x = residual_block(x, width * 2 ** stage, stride=1 if stage == 0 else 2)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x), name="encoder")


def projection_head(features: int, hidden: int, projection_dim: int) -> keras.Sequential:
    """The MLP between the features and the loss: it absorbs what the loss makes invariant; search skips it."""
    return keras.Sequential([keras.Input((features,)), layers.Dense(hidden, use_bias=False), batch_norm(),
                             layers.Activation("relu"), layers.Dense(projection_dim)], name="projection_head")


def nt_xent(first, second, temperature: float):
    """NT-Xent (Chen et al. 2020): cross-entropy of finding each view's partner among the other 2n - 1 views by
    cosine similarity / temperature, averaged over all 2n views."""
    n = ops.shape(first)[0]
    views = ops.concatenate([first, second], axis=0)
    views = views / ops.maximum(ops.norm(views, axis=1, keepdims=True), 1e-12)
    logits = ops.matmul(views, ops.transpose(views)) / temperature
    logits = logits - 1e9 * ops.eye(2 * n, dtype=logits.dtype)      # a view is not its own partner
    partners = ops.concatenate([ops.arange(n) + n, ops.arange(n)])
    return ops.mean(keras.losses.sparse_categorical_crossentropy(partners, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="astrozoo")
class SimCLR(keras.Model):
    """Two augmented views → encoder → projection head → NT-Xent; `encode` gives the encoder's features."""

    def __init__(self, image_size: int, channels: int, feature_dim: int, projection_dim: int, temperature: float,
                 shift: float, zoom: float, blur: float, noise: float, jitter: float, gamma: float, normalise: bool,
                 colour: bool, seed: int, **kwargs):
        super().__init__(**kwargs)
        if image_size < 2 ** STAGES:
            raise ModelError(f"simclr needs an image size of at least {2 ** STAGES} (it halves it {STAGES} times), "
                             f"got {image_size}. Use --image-size 64")
        step = 2 ** (STAGES - 1)
        if feature_dim % step:
            raise ModelError(f"simclr's feature_dim must be a multiple of {step} (the encoder's stages double their "
                             f"filters up to it), got {feature_dim}. "
                             f"Use e.g. --option feature_dim={max(step, feature_dim // step * step)}")
        self.image_size, self.channels, self.feature_dim = image_size, channels, feature_dim
        self.projection_dim = projection_dim
        self.temperature = temperature
        self.normalise, self.colour = normalise, colour
        self.augment_options = dict(shift=shift, zoom=zoom, blur=blur, noise=noise, jitter=jitter, gamma=gamma,
                                    seed=seed)
        self.augmenter = GalaxyAugment(**self.augment_options, name="augment")
        self.encoder = conv_encoder(image_size, channels, feature_dim, normalise, colour)
        self.head = projection_head(feature_dim, feature_dim, projection_dim)
        self.build((None, image_size, image_size, channels))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=False):
        """The projections of two random views of each image: (2n, projection_dim), first views first."""
        views = self.augmenter(ops.concatenate([images, images], axis=0))   # each copy gets its own random view
        return self.head(self.encoder(views, training=training), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """NT-Xent between the first and second views; the labels in the batch are ignored."""
        first, second = ops.split(ops.cast(y_pred, "float32"), 2, axis=0)
        return nt_xent(first, second, self.temperature)

    def encode(self, images, batch_size: int = 256):
        """Encoder features (n, features) of images in [0, 1], no augmentation: the embedding for search."""
        return predict(self.encoder, images, batch_size)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "feature_dim": self.feature_dim, "projection_dim": self.projection_dim, "temperature": self.temperature,
                "normalise": self.normalise, "colour": self.colour, **self.augment_options}

    @classmethod
    def from_config(cls, config):
        """Runs saved before the display-curve views and the stretch existed load without them, as trained."""
        return cls(**{"gamma": 0.0, "normalise": False, "colour": True, **config})


@keras.saving.register_keras_serializable(package="astrozoo")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps`, then a cosine down to 0 at `total_steps`: the usual SimCLR
    schedule. A few ops only, because Keras evaluates the schedule once per variable in every traced step."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.minimum(1.0, (step + 1) / max(1, self.warmup_steps))
        progress = ops.clip((step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps), 0.0, 1.0)
        return self.peak * warmup * 0.5 * (1 + ops.cos(math.pi * progress))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


@register("simclr", world="galaxies", capabilities=("encode",))
def simclr(image_size: int = GALAXY_SIZE, channels: int = 3, feature_dim: int = 128, projection_dim: int = 128,
           temperature: float = 0.2, shift: float = 0.06, zoom: float = 1.3, blur: float = 1.0,
           noise: float = 0.03, jitter: float = 0.25, gamma: float = 0.5, normalise: bool = True, colour: bool = False,
           learning_rate: float = 2e-3, weight_decay: float = 1e-4,
           warmup_epochs: int = 2, epochs: int = 25, batch_size: int = 256, steps_per_epoch: int = 15,
           seed: int = 0) -> SimCLR:
    """Self-supervised contrastive galaxy encoder (SimCLR); needs no labels."""
    model = SimCLR(image_size, channels, feature_dim, projection_dim, temperature, shift, zoom, blur, noise, jitter,
                   gamma, normalise, colour, seed, name="simclr")
    schedule = WarmupCosine(learning_rate, warmup_epochs * steps_per_epoch, epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay))
    return model
