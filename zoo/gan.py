"""What the zoo's GANs share: a generator and a discriminator with an optimizer each, the adversarial train step
of the keras.io DCGAN / WGAN-GP examples, the gradient penalty, and the sizes a generator grows through.

Backends: the adversarial step is written once, with ordinary variable reads and assigns. On TensorFlow it runs
as it is, with tf.GradientTape; on JAX it runs inside a StatelessScope as the pure function of the state that
Keras' JAX `fit` expects, with jax.value_and_grad (the keras.io guide on custom train steps in JAX). The two
optimizers sit in one keras.optimizers.MultiOptimizer, so both are part of Keras' training state (JAX state,
checkpoints). Under tf.distribute.MirroredStrategy each replica draws its slice of the global batch's noise
and scales its losses by the replicas in sync; Keras' JAX distribution runs the step on the global batch.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core.errors import ModelError

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


class GAN(keras.Model):
    """A generator (latent vector → image in [-1, 1]) and a discriminator (image → score), trained against each
    other.

    Subclasses build `self.generator` and `self.discriminator` and write their losses with keras.ops in
    `discriminator_terms` and `generator_loss`; `critic_steps` discriminator updates come before each generator
    update. `generate(n, seed)` gives images in [0, 1], the same for the same seed.
    """

    critic_steps = 1
    loss_names = ("d_loss", "g_loss")

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
        generated = {id(variable) for variable in self.generator.trainable_variables}
        both = keras.optimizers.MultiOptimizer(
            lambda variable: generator_optimizer if id(variable) in generated else discriminator_optimizer)
        super().compile(optimizer=both)
        self.generator_optimizer, self.discriminator_optimizer = generator_optimizer, discriminator_optimizer
        both.build(self.trainable_variables)

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
        return self.replica_noise(keras.random.normal, batch_size, self.latent_dim)

    def replica_noise(self, draw, batch_size, *shape):
        """`draw`'s noise for this replica's `batch_size` rows: drawn for the global batch from the model's seed
        and sliced, so replicas get different noise and N replicas use exactly the noise of one device."""
        replicas, replica = replica_position()
        noise = draw((batch_size * replicas, *shape), seed=self.noise)
        return noise[replica * batch_size:(replica + 1) * batch_size]

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

    # The adversarial step, written once with variable reads and assigns; `train_step` and `test_step` run it
    # as TensorFlow code, or as JAX's pure function of the state (see `stateless`).

    def train_step(self, *state_and_data):
        """Keras calls train_step(data) on TensorFlow and train_step(state, data) on JAX."""
        return self.on_backend(self.adversarial_step, *state_and_data)

    def test_step(self, *state_and_data):
        return self.on_backend(self.evaluation_step, *state_and_data)

    def on_backend(self, step, *state_and_data):
        if keras.backend.backend() == "jax":
            return stateless(self, step, *state_and_data)
        return step(state_and_data[0])

    def adversarial_step(self, data):
        """`critic_steps` discriminator updates, then one generator update, on this replica's part of the batch."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = self.prepare_real(images)
        batch_size = ops.shape(real)[0]
        for _ in range(self.critic_steps):
            fake = self.synthesize(self.latents(batch_size), training=True)
            terms, gradients = loss_gradients(self, lambda: self.discriminator_terms(real, fake), "d_loss",
                                              self.discriminator_weights())
            self.discriminator_optimizer.apply(gradients, self.discriminator_weights())
        generator_terms, gradients = loss_gradients(
            self, lambda: {"g_loss": self.generator_loss(self.synthesize(self.latents(batch_size), training=True))},
            "g_loss", self.generator_weights())
        self.generator_optimizer.apply(gradients, self.generator_weights())
        self.optimizer.iterations.assign_add(1)
        return self.track({**terms, **generator_terms}, batch_size)

    def evaluation_step(self, data):
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
        mix = self.replica_noise(keras.random.uniform, ops.shape(real)[0], 1, 1, 1)
        between = real + mix * (fake - real)
        gradients = input_gradients(lambda images: self.discriminate(images, training=training), between)
        norms = ops.sqrt(ops.sum(ops.square(gradients), axis=(1, 2, 3)) + GRADIENT_NORM_EPSILON)
        return ops.mean(ops.square(norms - 1.0))


# Backend-specific from here: gradients, JAX's stateless state, the replica a TensorFlow step runs on.

def replica_position() -> tuple[int, int]:
    """(replicas, this replica's number) inside a tf.distribute step; (1, 0) elsewhere. Keras' JAX distribution
    runs one program on the global batch, so it counts as one replica."""
    if keras.backend.backend() != "tensorflow":
        return 1, 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:
        return 1, 0
    return context.num_replicas_in_sync, context.replica_id_in_sync_group


def loss_gradients(model, loss_terms, name: str, weights: list) -> tuple[dict, list]:
    """(terms, gradients of terms[name] with respect to `weights`) for `terms = loss_terms()`.

    TensorFlow: a GradientTape, the loss divided by the replicas in sync, since the optimizer sums the replicas'
    gradients. JAX: jax.value_and_grad of the terms as a pure function of the weights' values; updates the terms
    make to other variables (BatchNorm statistics, seed states) are assigned afterwards.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            terms = loss_terms()
            loss = terms[name] / replica_position()[0]
        return terms, tape.gradient(loss, weights)
    import jax

    differentiated = {id(weight) for weight in weights}
    others = [variable for variable in model.variables if id(variable) not in differentiated]

    def loss_of(values):
        with keras.StatelessScope([(v, v.value) for v in others] + list(zip(weights, values))) as scope:
            terms = loss_terms()
        return terms[name], (terms, [scope.get_current_value(v) for v in others])

    (_, (terms, updated)), gradients = jax.value_and_grad(loss_of, has_aux=True)([w.value for w in weights])
    for variable, value in zip(others, updated):
        variable.assign(value)
    return terms, gradients


def input_gradients(function, inputs):
    """∂ sum(function(inputs)) / ∂ inputs: per-sample input gradients of a per-sample function."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = function(inputs)
        return tape.gradient(outputs, inputs)
    import jax

    return jax.grad(lambda x: ops.sum(function(x)))(inputs)


def stateless(model, step, state: tuple, data):
    """Runs `step(data)`, written with ordinary variable reads and assigns, as JAX's pure train or test step:
    every variable reads its value from `state` and every assign lands in the state returned."""
    groups = ([model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
               model.metrics_variables] if len(state) == 4 else
              [model.trainable_variables, model.non_trainable_variables, model.metrics_variables])
    with keras.StatelessScope([pair for group, values in zip(groups, state) for pair in zip(group, values)]) as scope:
        logs = step(data)
    return logs, tuple([scope.get_current_value(v) for v in group] for group in groups)
