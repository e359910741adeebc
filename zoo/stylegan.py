"""A progressive StyleGAN (Karras et al., ProGAN 2017 and StyleGAN 2018) in Keras 3, after the keras.io StyleGAN
example but without tensorflow-addons: equalized learning rate, instance normalisation, AdaIN and minibatch
standard deviation are written here with keras.ops.

Generator: z → pixel norm → mapping network (equalized dense layers, learning-rate multiplier 0.01) → style w.
Synthesis starts from a learned 4×4 constant; each resolution block upsamples 2× and then, twice: conv 3×3,
per-pixel noise scaled per channel, LeakyReLU, AdaIN (instance norm, then a scale and shift computed from w).
A 1×1 "to RGB" conv per resolution gives the image. Critic: "from RGB" 1×1 conv, per resolution two convs and 2×
average pooling, then at 4×4 the minibatch standard deviation, a conv and two dense layers.

Progressive growing: training starts at `start_size` and doubles the resolution every `images_per_stage` real
images. During the first half of each new stage the new block fades in, image = (1-α)·upsampled old output +
α·new output (the critic mirrors it, and real images are blended the same way), with α rising linearly from 0 to
1. Images seen, the level and α are model variables, so a checkpoint brings the schedule back and `--resume`
continues at the right stage. Loss: WGAN-GP plus a drift term 0.001·E[D(real)²] that keeps scores near 0.

Backends: the train step is zoo/gan.py's (TensorFlow). Each resolution is a different graph: `fit` adds the
FollowSchedule callback, which moves to the next level between batches and has Keras trace a new train step.
Building, `generate`, saving and loading work on any backend.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from core.errors import ModelError
from core.worlds import GALAXY_SIZE
from zoo.gan import GAN, MinibatchStdDev, replica_position, to_signed, to_unit
from zoo.registry import register

LEAK = 0.2
MAPPING_LEARNING_RATE = 0.01


def leaky(x):
    return ops.leaky_relu(x, LEAK)


def pixel_norm(x):
    """Scales each vector to unit root-mean-square length (ProGAN), so z's scale never matters."""
    return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-8)


def upsample(images, factor: int = 2):
    """Nearest-neighbour upsampling: each pixel becomes a factor×factor block."""
    return ops.repeat(ops.repeat(images, factor, axis=1), factor, axis=2) if factor > 1 else images


def downsample(images, factor: int = 2):
    return ops.average_pool(images, factor, factor) if factor > 1 else images


def blend(old, new, alpha):
    """(1-α)·old + α·new, exactly `old` at α = 0 and exactly `new` at α = 1."""
    return (1.0 - alpha) * old + alpha * new


class EqualizedDense(layers.Layer):
    """Dense layer whose weights are stored as N(0, 1) and scaled by He's constant at run time (ProGAN's equalized
    learning rate), so Adam moves every layer at the same relative speed; `lr_multiplier` slows a layer down."""

    def __init__(self, units: int, gain: float = math.sqrt(2), lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.units, self.gain, self.lr_multiplier, self.bias_init = units, gain, lr_multiplier, bias_init

    def build(self, input_shape):
        fan_in = input_shape[-1]
        self.kernel = self.add_weight(shape=(fan_in, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier))
        self.bias = self.add_weight(shape=(self.units,), name="bias",
                                    initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier))
        self.scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier

    def call(self, x):
        return ops.matmul(x, self.kernel * self.scale) + self.bias * self.lr_multiplier


class EqualizedConv2D(layers.Layer):
    """'Same' convolution with the equalized learning rate of EqualizedDense."""

    def __init__(self, filters: int, kernel_size: int = 3, gain: float = math.sqrt(2), **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.gain = filters, kernel_size, gain

    def build(self, input_shape):
        fan_in = self.kernel_size * self.kernel_size * input_shape[-1]
        self.kernel = self.add_weight(shape=(self.kernel_size, self.kernel_size, input_shape[-1], self.filters),
                                      initializer=keras.initializers.RandomNormal(stddev=1.0), name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
        self.scale = self.gain / math.sqrt(fan_in)

    def call(self, x):
        return ops.conv(x, self.kernel * self.scale, padding="same") + self.bias


class NoiseInjection(layers.Layer):
    """Adds one map of Gaussian noise per image, scaled by a learned weight per channel: the source of stochastic
    detail (where the knots and field stars fall) that the style should not have to encode."""

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="weight")

    def call(self, x, noise_seed):
        batch, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        return x + self.weight * keras.random.normal((batch, height, width, 1), seed=noise_seed)


class AdaIN(layers.Layer):
    """Adaptive instance normalisation: each feature map normalised per image, then scaled and shifted by the style."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.style_scale = EqualizedDense(channels, gain=1.0, bias_init=1.0)
        self.style_shift = EqualizedDense(channels, gain=1.0)

    def build(self, input_shape):
        self.built = True

    def call(self, x, style):
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        normalised = (x - mean) * ops.rsqrt(variance + 1e-8)
        return normalised * self.style_scale(style)[:, None, None, :] + self.style_shift(style)[:, None, None, :]


class SynthesisBlock(layers.Layer):
    """One resolution of the generator: (upsample 2×, conv 3×3,) noise, LeakyReLU, AdaIN, then conv 3×3, noise,
    LeakyReLU, AdaIN. The 4×4 block starts from the learned constant without the first conv."""

    def __init__(self, filters: int, grows: bool, **kwargs):
        super().__init__(**kwargs)
        self.grows = grows
        self.first_conv = EqualizedConv2D(filters) if grows else None
        self.first_noise, self.first_adain = NoiseInjection(), AdaIN(filters)
        self.second_conv = EqualizedConv2D(filters)
        self.second_noise, self.second_adain = NoiseInjection(), AdaIN(filters)

    def build(self, input_shape):
        self.built = True

    def call(self, x, style, noise_seed):
        if self.grows:
            x = self.first_conv(upsample(x))
        x = self.first_adain(leaky(self.first_noise(x, noise_seed=noise_seed)), style)
        x = self.second_conv(x)
        return self.second_adain(leaky(self.second_noise(x, noise_seed=noise_seed)), style)


class StyleGenerator(layers.Layer):
    """Mapping network, 4×4 constant, one SynthesisBlock and one to-RGB conv per level (level 0 = 4×4)."""

    def __init__(self, channels: int, latent_dim: int, mapping_layers: int, filters_per_level: list[int], **kwargs):
        super().__init__(**kwargs)
        self.mapping = [EqualizedDense(latent_dim, lr_multiplier=MAPPING_LEARNING_RATE) for _ in range(mapping_layers)]
        self.constant = self.add_weight(shape=(1, 4, 4, filters_per_level[0]), initializer="ones", name="constant")
        self.blocks = [SynthesisBlock(f, grows=level > 0) for level, f in enumerate(filters_per_level)]
        self.to_rgb = [EqualizedConv2D(channels, 1, gain=1.0) for _ in filters_per_level]

    def build(self, input_shape):
        self.built = True

    def call(self, latents, level: int, alpha, noise_seed):
        """Images in about [-1, 1] at 4·2^level px; below α = 1 the last block is fading in."""
        style = pixel_norm(latents)
        for dense in self.mapping:
            style = leaky(dense(style))
        x = ops.broadcast_to(self.constant, (ops.shape(latents)[0], *self.constant.shape[1:]))
        previous = x
        for block in self.blocks[:level + 1]:
            previous, x = x, block(x, style, noise_seed=noise_seed)
        image = self.to_rgb[level](x)
        return blend(upsample(self.to_rgb[level - 1](previous)), image, alpha) if level > 0 else image

    def weights_at(self, level: int) -> list:
        """The trainable variables a forward pass at `level` uses."""
        used = [*self.mapping, *self.blocks[:level + 1], *self.to_rgb[max(0, level - 1):level + 1]]
        return [self.constant] + [w for layer in used for w in layer.trainable_variables]


class CriticBlock(layers.Layer):
    """One resolution of the critic: conv 3×3 and LeakyReLU twice, then 2× average pooling."""

    def __init__(self, filters: int, next_filters: int, **kwargs):
        super().__init__(**kwargs)
        self.first_conv, self.second_conv = EqualizedConv2D(filters), EqualizedConv2D(next_filters)

    def build(self, input_shape):
        self.built = True

    def call(self, x):
        return downsample(leaky(self.second_conv(leaky(self.first_conv(x)))))


class StyleCritic(layers.Layer):
    """From-RGB conv per level, CriticBlocks down to 4×4, then minibatch stddev, conv, dense, dense → one score."""

    def __init__(self, filters_per_level: list[int], **kwargs):
        super().__init__(**kwargs)
        self.from_rgb = [EqualizedConv2D(f, 1) for f in filters_per_level]
        self.blocks = [CriticBlock(filters_per_level[level], filters_per_level[level - 1])
                       for level in range(1, len(filters_per_level))]
        self.minibatch_stddev = MinibatchStdDev()
        self.head_conv = EqualizedConv2D(filters_per_level[0])
        self.head_dense = EqualizedDense(filters_per_level[0])
        self.score = EqualizedDense(1, gain=1.0)

    def build(self, input_shape):
        self.built = True

    def call(self, images, level: int, alpha):
        x = leaky(self.from_rgb[level](images))
        if level > 0:
            x = blend(leaky(self.from_rgb[level - 1](downsample(images))), self.blocks[level - 1](x), alpha)
        for block in reversed(self.blocks[:level - 1] if level > 0 else []):
            x = block(x)
        x = leaky(self.head_conv(self.minibatch_stddev(x)))
        return self.score(leaky(self.head_dense(ops.reshape(x, (ops.shape(x)[0], -1)))))

    def weights_at(self, level: int) -> list:
        used = [*self.from_rgb[max(0, level - 1):level + 1], *self.blocks[:level], self.head_conv, self.head_dense,
                self.score]
        return [w for layer in used for w in layer.trainable_variables]


def check_sizes(image_size: int, start_size: int) -> None:
    def power_of_two(size: int) -> bool:
        return size >= 4 and size & (size - 1) == 0

    if image_size < 8 or not power_of_two(image_size):
        nearest = max(8, 2 ** round(math.log2(max(image_size, 1))))
        raise ModelError(f"stylegan grows by doubling from 4×4 px, so its image size must be a power of two from 8, "
                         f"got {image_size}. Use --image-size {nearest}")
    if not power_of_two(start_size) or start_size > image_size:
        raise ModelError(f"stylegan's start size must be a power of two from 4 to the image size ({image_size}), "
                         f"got {start_size}. Use --start-size 4")


@keras.saving.register_keras_serializable(package="astrozoo")
class StyleGAN(GAN):
    """Progressively grown StyleGAN; WGAN-GP + drift loss, one critic step per generator step."""

    loss_names = ("d_loss", "g_loss", "gradient_penalty")

    def __init__(self, image_size: int, channels: int, latent_dim: int, filters: int,
                 mapping_layers: int, start_size: int, images_per_stage: int,
                 gp_weight: float, drift_weight: float, seed: int, **kwargs):
        super().__init__(image_size, channels, latent_dim, seed, **kwargs)
        check_sizes(image_size, start_size)
        if images_per_stage < 2:
            raise ModelError(f"stylegan needs at least 2 images per stage, got {images_per_stage}. "
                             "Use e.g. --images-per-stage 8000")
        self.filters, self.mapping_layers, self.start_size = filters, mapping_layers, start_size
        self.images_per_stage, self.gp_weight, self.drift_weight = images_per_stage, gp_weight, drift_weight
        self.start_level, self.final_level = int(math.log2(start_size)) - 2, int(math.log2(image_size)) - 2
        filters_per_level = [self.filters_at(4 * 2 ** level) for level in range(self.final_level + 1)]
        self.generator = StyleGenerator(channels, latent_dim, mapping_layers, filters_per_level, name="generator")
        self.discriminator = StyleCritic(filters_per_level, name="critic")
        self.images_seen = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False,
                                           name="images_seen", aggregation="only_first_replica")
        self.level = self.add_weight(shape=(), dtype="int32", trainable=False, name="level",
                                     initializer=keras.initializers.Constant(self.start_level))
        self.alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="alpha",
                                     aggregation="only_first_replica")
        self.graph_level = self.start_level
        for level in range(self.final_level + 1):  # run every level once, so all weights exist before training
            self.generator(ops.zeros((1, latent_dim)), level=level, alpha=1.0, noise_seed=0)
            self.discriminator(ops.zeros((1, 4 * 2 ** level, 4 * 2 ** level, channels)), level=level, alpha=1.0)
        self.build()

    def filters_at(self, resolution: int) -> int:
        """`filters` up to 32 px, halving with every doubling above (ProGAN's widths, scaled down for a CPU)."""
        return max(8, min(self.filters, self.filters * 32 // resolution))

    # The schedule: stage k (k = 0, 1, ...) covers images k·images_per_stage to (k+1)·images_per_stage.

    def scheduled_level(self, images_seen: int) -> int:
        return min(self.final_level, self.start_level + images_seen // self.images_per_stage)

    def fade(self, images_seen, level: int):
        """α at `level` after `images_seen` images: 0 → 1 linearly through the first half of the stage, then 1."""
        if level == self.start_level:
            return ops.convert_to_tensor(1.0)
        stage_start = (level - self.start_level) * self.images_per_stage
        progress = (ops.cast(images_seen, "float32") - stage_start) / (self.images_per_stage / 2)
        return ops.clip(progress, 0.0, 1.0)

    @property
    def resolution(self) -> int:
        """The side of the images the generator makes now (before `generate` upsamples them)."""
        return 4 * 2 ** int(ops.convert_to_numpy(self.level))

    def follow_schedule(self) -> None:
        """Moves to the level the schedule gives for the images seen so far."""
        level = self.scheduled_level(int(ops.convert_to_numpy(self.images_seen)))
        if level != self.graph_level:
            self.level.assign(level)
            self.alpha.assign(self.fade(self.images_seen, level))
            self.trace_at(level)

    def load_own_variables(self, store):
        """After a checkpoint is loaded, the train and test steps follow the level it holds."""
        super().load_own_variables(store)
        level = int(ops.convert_to_numpy(self.level))
        if level != self.graph_level:
            self.trace_at(level)

    def trace_at(self, level: int) -> None:
        """A new level is a new graph: Keras traces the train and test steps again at their next call."""
        self.graph_level = level
        self.test_function = None
        if self.train_function is not None:
            self.make_train_function(force=True)

    # The GAN hooks at the current level.

    def synthesize(self, latents, training=False):
        return self.generator(latents, level=self.graph_level, alpha=self.alpha, noise_seed=self.noise)

    def discriminate(self, images, training=False):
        return self.discriminator(images, level=self.graph_level, alpha=self.alpha)

    def prepare_real(self, images):
        """Real images averaged down to the current resolution; during a fade-in, blended with their own 2×
        coarser version the way the generator blends its output."""
        real = downsample(to_signed(images), 2 ** (self.final_level - self.graph_level))
        if self.graph_level == self.start_level:
            return real
        return blend(upsample(downsample(real)), real, self.alpha)

    def generator_weights(self):
        return self.generator.weights_at(self.graph_level)

    def discriminator_weights(self):
        return self.discriminator.weights_at(self.graph_level)

    def discriminator_terms(self, real, fake, training=True) -> dict:
        penalty = self.gradient_penalty(real, fake, training=training)
        real_scores = self.discriminate(real, training)
        distance = ops.mean(self.discriminate(fake, training)) - ops.mean(real_scores)
        drift = ops.mean(ops.square(real_scores))
        return {"d_loss": distance + self.gp_weight * penalty + self.drift_weight * drift, "gradient_penalty": penalty}

    def generator_loss(self, fake, training=True):
        return -ops.mean(self.discriminate(fake, training))

    def adversarial_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.alpha.assign(self.fade(self.images_seen, self.graph_level))
        logs = super().adversarial_step(data)
        replicas, _ = replica_position()
        self.images_seen.assign_add(ops.cast(ops.shape(images)[0] * replicas, "int32"))
        return {**logs, "alpha": ops.convert_to_tensor(self.alpha), "resolution": 4 * 2 ** self.graph_level}

    def fit(self, *args, callbacks=None, **kwargs):
        """Keras' fit, with the callback that grows the networks on schedule."""
        return super().fit(*args, callbacks=[*(callbacks or []), FollowSchedule()], **kwargs)

    def call(self, latents, training=False):
        factor = 2 ** (self.final_level - self.graph_level)
        return to_unit(upsample(self.synthesize(latents, training=training), factor))

    def generate(self, n: int, seed: int = 0, batch_size: int = 64) -> np.ndarray:
        """n images in [0, 1] at the full image size, at the current level and α (lower levels are upsampled);
        latents and noise maps are drawn from `seed`."""
        level, alpha = int(ops.convert_to_numpy(self.level)), float(ops.convert_to_numpy(self.alpha))
        latents = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype("float32")
        noise_seed = keras.random.SeedGenerator(seed)
        batches = [self.generator(latents[start:start + batch_size], level=level, alpha=alpha,
                                  noise_seed=noise_seed)
                   for start in range(0, n, batch_size)]
        images = upsample(ops.concatenate(batches), 2 ** (self.final_level - level))
        return np.clip(ops.convert_to_numpy(to_unit(images)), 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "mapping_layers": self.mapping_layers,
                "start_size": self.start_size, "images_per_stage": self.images_per_stage,
                "gp_weight": self.gp_weight, "drift_weight": self.drift_weight}


class FollowSchedule(keras.callbacks.Callback):
    """Before every batch, moves a StyleGAN to the level its schedule gives (also right after a checkpoint restore)."""

    def on_train_batch_begin(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()     # JAX's fit holds the images seen in its state until synced
        self.model.follow_schedule()


@register("stylegan", world="galaxies", capabilities=("generate",))
def stylegan(image_size: int = GALAXY_SIZE, channels: int = 3, latent_dim: int = 128, filters: int = 64,
             mapping_layers: int = 8, start_size: int = 4, images_per_stage: int = 8000, gp_weight: float = 10.0,
             drift_weight: float = 0.001, seed: int = 0, learning_rate: float = 1e-3) -> StyleGAN:
    """Progressive StyleGAN (4×4 → image size), AdaIN, noise inputs, WGAN-GP + drift."""
    model = StyleGAN(image_size, channels, latent_dim, filters, mapping_layers, start_size, images_per_stage,
                     gp_weight, drift_weight, seed, name="stylegan")
    model.compile(generator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
                  discriminator_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.0, beta_2=0.99, epsilon=1e-8))
    return model
