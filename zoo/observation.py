"""Layers that make a galaxy model look past the observation: random views of the sky, and each image's own stretch.

`GalaxyAugment` draws, inside the model and on any backend, what another observation of the same galaxy could
look like (orientation, shift, size, seeing, noise, brightness, colour, display curve): SimCLR learns to map such
views together, and a classifier trained through it cannot lean on one look. `PercentileStretch` rescales every
image by its own intensity percentiles, so the black point and the brightness of a photograph (a survey cut-out
or an astrophotograph, stretched however its maker liked) stop mattering before the first convolution.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

STRETCH_PERCENTILES = (10.0, 99.5)     # sky goes to black, the brightest half percent (cores, stars) to white


@keras.saving.register_keras_serializable(package="astrozoo")
class GalaxyAugment(layers.Layer):
    """A random galaxy-safe view of each image in a batch of images in [0, 1], same shape, still in [0, 1].

    One affine resample per image (any rotation angle, a mirror flip, zoom in [1/zoom, zoom], shift up to
    `shift` of the side; outside the frame the edge is reflected, which keeps sky there), then a PSF-like
    Gaussian blur mixed in by a random amount up to `blur`, brightness × exp(±jitter) and each colour ×
    exp(±jitter/3), Gaussian noise of standard deviation up to `noise`, and a display curve x^γ with
    log γ uniform in ±`gamma` (another stretch of the same sky). Nothing is cropped away beyond the zoom. The same
    seed gives the same views.
    """

    def __init__(self, shift: float, zoom: float, blur: float, noise: float, jitter: float, seed: int,
                 gamma: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.shift, self.zoom, self.blur, self.noise, self.jitter, self.seed = shift, zoom, blur, noise, jitter, seed
        self.gamma = gamma
        self.seed_generator = keras.random.SeedGenerator(seed)
        radius = 2
        taps = [math.exp(-0.5 * (i / 1.0) ** 2) for i in range(-radius, radius + 1)]   # σ = 1 px
        self.taps = [t / sum(taps) for t in taps]

    def uniform(self, n, low: float, high: float, channels: int = 1):
        return keras.random.uniform((n, channels), low, high, seed=self.seed_generator)

    def call(self, images):
        images = ops.cast(images, "float32")
        n, size, channels = ops.shape(images)[0], images.shape[1], images.shape[-1]
        images = ops.image.affine_transform(images, self.transforms(n, size), fill_mode="reflect")
        if self.blur > 0:
            amount = ops.reshape(self.uniform(n, 0.0, self.blur), (-1, 1, 1, 1))
            images = images + amount * (self.gaussian_blur(images, channels) - images)
        if self.jitter > 0:
            brightness = ops.exp(self.uniform(n, -self.jitter, self.jitter))
            colour = ops.exp(self.uniform(n, -self.jitter / 3, self.jitter / 3, channels))
            images = images * ops.reshape(brightness * colour, (-1, 1, 1, channels))
        if self.noise > 0:
            sigma = ops.reshape(self.uniform(n, 0.0, self.noise), (-1, 1, 1, 1))
            images = images + sigma * keras.random.normal(ops.shape(images), seed=self.seed_generator)
        images = ops.clip(images, 0.0, 1.0)
        if self.gamma > 0:
            exponent = ops.reshape(ops.exp(self.uniform(n, -self.gamma, self.gamma)), (-1, 1, 1, 1))
            images = ops.power(images + 1e-6, exponent)
        return images

    def transforms(self, n, size: int):
        """Rows [a0, a1, a2, b0, b1, b2, 0, 0] mapping output pixels to input pixels: the image is rotated and
        mirrored about its centre, scaled by `scale` and moved by up to `shift` of the side along each axis."""
        angle = self.uniform(n, 0.0, 2 * math.pi)
        mirror = ops.sign(self.uniform(n, -1.0, 1.0))
        scale = ops.exp(self.uniform(n, -math.log(self.zoom), math.log(self.zoom)))
        shift_x, shift_y = (self.uniform(n, -self.shift * size, self.shift * size) for _ in range(2))
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        a0, a1, b0, b1 = cos * mirror, -sin, sin * mirror, cos
        centre = (size - 1) / 2
        # output pixel p reads input pixel A (p - centre - shift) + centre
        a2 = centre - a0 * (centre + shift_x) - a1 * (centre + shift_y)
        b2 = centre - b0 * (centre + shift_x) - b1 * (centre + shift_y)
        return ops.concatenate([a0, a1, a2, b0, b1, b2, ops.zeros_like(a0), ops.zeros_like(a0)], axis=1)

    def gaussian_blur(self, images, channels: int):
        """A separable σ = 1 px Gaussian, the seeing of a slightly worse night."""
        taps = ops.convert_to_tensor(self.taps, "float32")
        rows = ops.tile(ops.reshape(taps, (-1, 1, 1, 1)), (1, 1, channels, 1))
        columns = ops.tile(ops.reshape(taps, (1, -1, 1, 1)), (1, 1, channels, 1))
        return ops.depthwise_conv(ops.depthwise_conv(images, rows, padding="same"), columns, padding="same")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shift": self.shift, "zoom": self.zoom, "blur": self.blur,
                "noise": self.noise, "jitter": self.jitter, "seed": self.seed, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="astrozoo")
class PercentileStretch(layers.Layer):
    """Each image in [0, 1] mapped so that its `low` percentile of intensity (the mean over channels) goes to 0 and
    its `high` percentile to 1, clipped to [0, 1]; colours are scaled together. Images too flat to stretch (high
    within 1/255 of low) are only shifted."""

    def __init__(self, low: float, high: float, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = low, high

    def call(self, images):
        images = ops.cast(images, "float32")
        pixels = images.shape[1] * images.shape[2]
        intensity = ops.sort(ops.reshape(ops.mean(images, axis=-1), (-1, pixels)), axis=-1)
        low = intensity[:, round(self.low / 100 * (pixels - 1))]
        high = intensity[:, round(self.high / 100 * (pixels - 1))]
        span = ops.maximum(high - low, 1 / 255)
        return ops.clip((images - ops.reshape(low, (-1, 1, 1, 1))) / ops.reshape(span, (-1, 1, 1, 1)), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="astrozoo")
class Greyscale(layers.Layer):
    """Each image's intensity (the mean over channels) in every channel: colour balance stops mattering."""

    def call(self, images):
        images = ops.cast(images, "float32")
        return ops.repeat(ops.mean(images, axis=-1, keepdims=True), images.shape[-1], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape
