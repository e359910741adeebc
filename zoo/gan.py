"""What the zoo's GANs share: a generator and a discriminator with an optimizer each, the adversarial train step
of the keras.io DCGAN / WGAN-GP examples, the gradient penalty, and the sizes a generator grows through.

Backends: `train_step`, `test_step` and `gradient_penalty` at the bottom of this file are the only
TensorFlow-specific code of the GANs (tf.GradientTape). Networks, losses and `generate` are Keras layers and
keras.ops, so every GAN builds, generates, saves and loads on JAX too; `fit` on another backend stops with a
ModelError.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core.errors import ModelError
from zoo.registry import trains_on

GRADIENT_NORM_EPSILON = 1e-12


def growth_plan(model: str, image_size: int) -> tuple[int, int]:
    """(start side, doublings) of a generator reaching `image_size`: it starts at 4-8 px and doubles its side.

    A size that is not such a start times a power of two is generated slightly larger and cropped centrally
    (30 px: 8 → 16 → 32, cropped to 30); the discriminator pads it back.
    """
    if image_size < 8:
        raise ModelError(f"{model} needs an image size of at least 8, got {image_size}. Use --image-size 32")
    doublings = (image_size // 4).bit_length() - 1
    return -(-image_size // 2 ** doublings), doublings


def widths(filters: int, doublings: int) -> list[int]:
    """Channels at each side from the start to the full size: the widest first, halving as the side doubles,
    `filters` at the full size and at most 8 × `filters`."""
    return [filters * min(8, 2 ** (doublings - level)) for level in range(doublings + 1)]


def centre_margins(excess: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows/columns to crop (or pad) on each side to remove (or add) `excess` pixels, centred."""
    return (excess // 2, excess - excess // 2), (excess // 2, excess - excess // 2)


def to_unit(images):
    """[-1, 1] (tanh generators) → [0, 1], the zoo's pixel contract."""
    return (images + 1.0) / 2.0


def to_signed(images):
    """[0, 1] → [-1, 1], the range the generators produce."""
    return ops.convert_to_tensor(images) * 2.0 - 1.0


@keras.saving.register_keras_serializable(package="astrozoo")
class MinibatchStdDev(keras.layers.Layer):
    """Appends the batch's mean feature standard deviation as one more channel (ProGAN), so the discriminator sees
    when a batch of generated images has too little variety and the generator is pushed away from collapse."""

    def call(self, x):
        spread = ops.mean(ops.sqrt(ops.var(x, axis=0) + 1e-8))
        return ops.concatenate([x, ops.ones_like(x[..., :1]) * spread], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


def check_train_backend(model, name: str) -> None:
    """ModelError unless `model` trains on the current Keras backend (see zoo.registry.trains_on)."""
    backend = keras.backend.backend()
    if not trains_on(model, backend):
        raise ModelError(f"{name} trains only with the TensorFlow backend, not {backend}. "
                         "Set KERAS_BACKEND=tensorflow to train it (it generates on any backend)")


class GAN(keras.Model):
    """A generator (latent vector → image in [-1, 1]) and a discriminator (image → score), trained against each
    other.

    Subclasses build `self.generator` and `self.discriminator` and write their losses with keras.ops in
    `discriminator_terms` and `generator_loss`; `critic_steps` discriminator updates come before each generator
    update. `generate(n, seed)` gives images in [0, 1], the same for the same seed.
    """

    critic_steps = 1
    loss_names = ("d_loss", "g_loss")
    train_backends = ("tensorflow",)      # the train step below uses tf.GradientTape

    def __init__(self, image_size: int, channels: int, latent_dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.channels, self.latent_dim, self.seed = image_size, channels, latent_dim, seed
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in self.loss_names]

    def build(self, input_shape=None):
        self.built = True

    def compile(self, generator_optimizer: keras.optimizers.Optimizer,
                discriminator_optimizer: keras.optimizers.Optimizer):
        """One optimizer per network, built at once so a checkpoint restores their state before the first step."""
        super().compile(optimizer=None)
        self.generator_optimizer, self.discriminator_optimizer = generator_optimizer, discriminator_optimizer
        generator_optimizer.build(self.generator.trainable_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        return {"generator_optimizer": keras.optimizers.serialize(self.generator_optimizer),
                "discriminator_optimizer": keras.optimizers.serialize(self.discriminator_optimizer)}

    def compile_from_config(self, config):
        self.compile(**{name: keras.optimizers.deserialize(value) for name, value in config.items()})

    def call(self, latents, training=False):
        return to_unit(self.synthesize(latents, training=training))

    def synthesize(self, latents, training=False):
        """Images in [-1, 1] from latent vectors."""
        return self.generator(latents, training=training)

    def discriminate(self, images, training=False):
        """One score per image in [-1, 1]: high for images the discriminator takes for real."""
        return self.discriminator(images, training=training)

    def prepare_real(self, images):
        """A batch of real images in [0, 1] as the discriminator sees them."""
        return to_signed(images)

    def generator_weights(self) -> list:
        """The generator variables a train step updates."""
        return self.generator.trainable_variables

    def discriminator_weights(self) -> list:
        return self.discriminator.trainable_variables

    def latents(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.noise)

    def generate(self, n: int, seed: int = 0, batch_size: int = 64) -> np.ndarray:
        """n images (n, image_size, image_size, channels) in [0, 1] from standard-normal latents drawn with `seed`
        (called eagerly, batch by batch: no graph to trace again for every new n)."""
        latents = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype("float32")
        batches = [self(latents[start:start + batch_size]) for start in range(0, n, batch_size)]
        return np.clip(ops.convert_to_numpy(ops.concatenate(batches)), 0.0, 1.0)

    def discriminator_terms(self, real, fake, training=True) -> dict:
        """The discriminator's loss as "d_loss", and any term worth logging beside it."""
        raise NotImplementedError

    def generator_loss(self, fake, training=True):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "seed": self.seed}

    # TensorFlow-only from here: the keras.io train step with tf.GradientTape.

    def fit(self, *args, **kwargs):
        check_train_backend(self, getattr(self, "zoo_name", self.name))
        return super().fit(*args, **kwargs)

    def train_step(self, data):
        import tensorflow as tf

        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = self.prepare_real(images)
        batch_size = ops.shape(real)[0]
        for _ in range(self.critic_steps):
            fake = self.synthesize(self.latents(batch_size), training=True)
            with tf.GradientTape() as tape:
                terms = self.discriminator_terms(real, fake)
            weights = self.discriminator_weights()
            self.discriminator_optimizer.apply(tape.gradient(terms["d_loss"], weights), weights)
        with tf.GradientTape() as tape:
            terms["g_loss"] = self.generator_loss(self.synthesize(self.latents(batch_size), training=True))
        weights = self.generator_weights()
        self.generator_optimizer.apply(tape.gradient(terms["g_loss"], weights), weights)
        return self.track(terms, batch_size)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = self.prepare_real(images)
        batch_size = ops.shape(real)[0]
        fake = self.synthesize(self.latents(batch_size), training=False)
        terms = self.discriminator_terms(real, fake, training=False)
        terms["g_loss"] = self.generator_loss(fake, training=False)
        return self.track(terms, batch_size)

    def track(self, terms: dict, batch_size) -> dict:
        for tracker in self.trackers:
            tracker.update_state(terms[tracker.name], sample_weight=batch_size)
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def gradient_penalty(self, real, fake, training=True):
        """Mean (‖∇D(x̂)‖ - 1)² at random points x̂ between real and fake images (Gulrajani et al., 2017).

        The epsilon under the square root keeps its gradient finite where ∇D(x̂) = 0, so it cannot turn NaN.
        """
        import tensorflow as tf

        mix = keras.random.uniform((ops.shape(real)[0], 1, 1, 1), seed=self.noise)
        between = real + mix * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(between)
            scores = self.discriminate(between, training=training)
        gradients = tape.gradient(scores, between)
        norms = ops.sqrt(ops.sum(ops.square(gradients), axis=(1, 2, 3)) + GRADIENT_NORM_EPSILON)
        return ops.mean(ops.square(norms - 1.0))
