"""The seed's layered statistical model (the star-field seed, III.A.3: docs/background.md): a star field is
generated as three independent layers, each learned by the simplest thing that works.

1. Extraction (core/stars.py). A Gaussian filter the size of a star core scores every pixel as the centre of a
   30×30 patch; pixels above a threshold that are the highest within `min_distance` (non-maximum suppression)
   are stars. Each star gives its 30×30 patch and its centre; the pixels outside every patch are the background.
2. Background: no training. Pixels are drawn i.i.d. from the brightness histogram of the background of one
   real field (the seed found one image best; `background_images` takes more).
3. Stars: the zoo's WGAN-GP (zoo/wgan_gp.py) on the 30×30 patches.
   Coordinates: a DCGAN whose generator and discriminator are fully connected ("fully linear"); the
   generator ends in tanh and outputs 50 values, 25 (x, y) pairs scaled to [0, 1], fields with fewer
   stars padded with -1.

Generation draws the background, 25 pairs, keeps those with both coordinates in [0, 1] and pastes a
generated star at each (scaled to the field size) by taking the brighter pixel, so the star's own
background blends into the sampled one. A composite model (zoo/parts.py), saved as a folder of parts: parts.json
(options), background.npy (the histogram), stars.keras (the WGAN), coordinates.keras (the coordinate
generator) and examples.npy (extracted patches shown in samples/).

Backends: extraction, the background sampler and generation are numpy / OpenCV and Keras inference, so a
trained model generates on any backend; the two GANs train on TensorFlow and JAX (zoo/gan.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import layers, ops
from tqdm import tqdm

from core.errors import ModelError
from core.images import GREY_LEVELS, image_grid
from core.stars import FoundStars, background_pixels, extract_patches, no_stars_error, stars_of_fields
from core.worlds import FIELD_SIZE
from datasets.source import ArraySource
from zoo.gan import GAN
from zoo.parts import CompositeModel, EpochRows, FitSettings, HistoryLog
from zoo.registry import create, register

QUANTILE_STEPS = 2 ** 16    # resolution of the background sampler's inverse CDF
EXAMPLE_PATCHES = 64        # extracted patches kept to show in samples/


# 1. Coordinates of the extracted stars ----------------------------------------------------------------------

def encode_coordinates(stars: FoundStars, field_size: int, max_stars: int = 25) -> np.ndarray:
    """(2·max_stars,) float32: (x, y) / field_size of the brightest `max_stars` stars, ordered by x, then -1."""
    chosen = np.argsort(-stars.peak, kind="stable")[:max_stars]
    pairs = np.stack([stars.x[chosen], stars.y[chosen]], axis=1) / field_size
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    vector = np.full(2 * max_stars, -1.0, np.float32)
    vector[:2 * len(pairs)] = pairs.ravel()
    return vector


def decode_coordinates(vector: np.ndarray, field_size: int) -> np.ndarray:
    """(k, 2) centres x, y in px from one coordinate vector: the pairs with both values in [0, 1]."""
    pairs = np.asarray(vector, np.float64).reshape(-1, 2)
    return pairs[((pairs >= 0) & (pairs <= 1)).all(axis=1)] * field_size


# 2. Background ---------------------------------------------------------------------------------------------

class BackgroundSampler:
    """Draws i.i.d. pixels from a brightness histogram (the seed verified that background pixels are
    independent), through a QUANTILE_STEPS-entry inverse CDF: one random index and one lookup per pixel."""

    def __init__(self, histogram: np.ndarray):
        histogram = np.asarray(histogram, np.float64)
        if histogram.shape != (GREY_LEVELS,) or histogram.sum() <= 0:
            raise ValueError(f"a background histogram has {GREY_LEVELS} non-negative counts, not all zero")
        self.histogram = histogram / histogram.sum()
        steps = (np.arange(QUANTILE_STEPS) + 0.5) / QUANTILE_STEPS
        self.quantiles = np.searchsorted(np.cumsum(self.histogram), steps).clip(0, GREY_LEVELS - 1).astype(np.uint8)

    @classmethod
    def from_pixels(cls, pixels: np.ndarray) -> BackgroundSampler:
        return cls(np.bincount(np.asarray(pixels, np.uint8).ravel(), minlength=GREY_LEVELS))

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """uint8 pixels of `shape` drawn from the histogram."""
        return self.quantiles[rng.integers(0, QUANTILE_STEPS, shape, dtype=np.uint16)]


# 3. Coordinates: the seed's fully connected DCGAN ------------------------------------------------------------

class CoordinateGAN(GAN):
    """DCGAN on coordinate vectors: Dense-LeakyReLU generator ending in tanh (2·max_stars values in [-1, 1])
    and a Dense-LeakyReLU discriminator giving one logit; the non-saturating cross-entropy losses of DCGAN.

    A vector plays the part of a 1-channel "image" of 2·max_stars values for zoo/gan.py's train step; it is
    already in the generator's range, so it goes to the discriminator as it is and comes out as it is.
    """

    def __init__(self, max_stars: int, latent_dim: int, units: int, seed: int, **kwargs):
        super().__init__(2 * max_stars, 1, latent_dim, seed, **kwargs)
        self.generator = keras.Sequential([
            keras.Input((latent_dim,)),
            layers.Dense(units), layers.LeakyReLU(0.2),
            layers.Dense(units), layers.LeakyReLU(0.2),
            layers.Dense(2 * max_stars, activation="tanh"),
        ], name="coordinate_generator")
        self.discriminator = keras.Sequential([
            keras.Input((2 * max_stars,)),
            layers.Dense(units), layers.LeakyReLU(0.2),
            layers.Dense(units), layers.LeakyReLU(0.2),
            layers.Dense(1),
        ], name="coordinate_discriminator")
        self.build()

    def call(self, latents, training=False):
        return self.synthesize(latents, training=training)

    def generate(self, n: int, seed: int = 0) -> np.ndarray:
        """n coordinate vectors (n, 2·max_stars) in [-1, 1] from standard-normal latents drawn with `seed`."""
        latents = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        return ops.convert_to_numpy(self.generator(latents))

    def prepare_real(self, vectors):
        return ops.convert_to_tensor(vectors)

    def discriminator_terms(self, real, fake, training=True) -> dict:
        real_logits, fake_logits = self.discriminate(real, training), self.discriminate(fake, training)
        loss = (keras.losses.binary_crossentropy(ops.ones_like(real_logits), real_logits, from_logits=True)
                + keras.losses.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True))
        return {"d_loss": ops.mean(loss)}

    def generator_loss(self, fake, training=True):
        fake_logits = self.discriminate(fake, training)
        return ops.mean(keras.losses.binary_crossentropy(ops.ones_like(fake_logits), fake_logits, from_logits=True))


# 4. The composite model ------------------------------------------------------------------------------------

class LayeredModel(CompositeModel):
    """Background sampler + star WGAN + coordinate DCGAN, trained from whole fields by `fit_source`."""

    name = "layered"

    def __init__(self, *, image_size: int, patch_size: int, max_stars: int, threshold: float, min_distance: int,
                 background_images: int, star_latent_dim: int, star_filters: int, star_steps_per_epoch: int,
                 coordinate_latent_dim: int, coordinate_units: int, coordinate_epochs: int, learning_rate: float,
                 coordinate_learning_rate: float, seed: int):
        self.options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        if patch_size < 8 or patch_size > image_size:
            raise ModelError(f"layered needs a patch size from 8 px to the image size, got {patch_size}. "
                             "Use --option patch_size=30")
        if background_images < 1:
            raise ModelError(f"background_images must be at least 1, got {background_images}. "
                             "Use --option background_images=1 (the seed's best)")
        self.image_size, self.patch_size, self.max_stars = image_size, patch_size, max_stars
        self.stars = create("wgan-gp", image_size=patch_size, channels=1, latent_dim=star_latent_dim,
                            filters=star_filters, seed=seed, learning_rate=learning_rate)
        self.coordinates = CoordinateGAN(max_stars, coordinate_latent_dim, coordinate_units, seed,
                                         name="coordinate_gan")
        self.coordinates.compile(
            generator_optimizer=keras.optimizers.Adam(coordinate_learning_rate, beta_1=0.5),
            discriminator_optimizer=keras.optimizers.Adam(coordinate_learning_rate, beta_1=0.5))
        self.background: BackgroundSampler | None = None
        self.examples = np.zeros((0, patch_size, patch_size), np.uint8)

    def count_params(self) -> int:
        return self.stars.count_params() + self.coordinates.count_params()

    @property
    def trained(self) -> bool:
        return self.background is not None

    def extract(self, source, verbose: int | str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Star patches (uint8), coordinate vectors and the background histogram of a source's fields."""
        patches, vectors = [], []
        histogram = np.zeros(GREY_LEVELS, np.int64)
        found = stars_of_fields(source, self.image_size, self.options["threshold"], self.options["min_distance"],
                                "extracting stars", verbose)
        for index, (field, stars) in enumerate(found):
            patches.append(extract_patches(field, stars, self.patch_size))
            vectors.append(encode_coordinates(stars, self.image_size, self.max_stars))
            if index < self.options["background_images"]:
                histogram += np.bincount(background_pixels(field, stars, self.patch_size), minlength=GREY_LEVELS)
        return np.concatenate(patches), np.stack(vectors), histogram

    def fit_parts(self, source, validation, settings: FitSettings, log: HistoryLog) -> None:
        """Extraction and background (one pass over the fields), then the star WGAN for `epochs` epochs of
        `steps_per_epoch` generator steps (default: the `star_steps_per_epoch` option; a pass over ~10,000
        patches would take many minutes on a laptop CPU, a few hundred steps already give stars), then
        `coordinate_epochs` passes of the coordinate DCGAN. Each stage and epoch goes to `log` as a history row.
        The held-out `validation` fields are not used: the GANs have no validation loss to watch."""
        from datasets.pipeline import make_dataset  # tf.data, imported to train only: generation runs anywhere

        started = time.perf_counter()
        patches, vectors, histogram = self.extract(source, settings.verbose)
        if len(patches) == 0:
            raise no_stars_error(len(source), source.name, self.options["threshold"])
        self.background = BackgroundSampler(histogram)
        self.examples = patches[np.random.default_rng(settings.seed).permutation(len(patches))[:EXAMPLE_PATCHES]]
        log({"part": "extraction", "epoch": 0, "fields": len(vectors), "stars": len(patches),
             "seconds": time.perf_counter() - started})
        star_data = make_dataset(ArraySource(patches[..., None]), image_size=self.patch_size,
                                 batch_size=settings.batch_size, shuffle=True, augment=True, repeat=True,
                                 seed=settings.seed)
        self.stars.fit(star_data, epochs=settings.epochs,
                       steps_per_epoch=settings.steps_per_epoch or self.options["star_steps_per_epoch"],
                       callbacks=[EpochRows("stars", log)], shuffle=False,
                       verbose=settings.verbose)     # make_dataset already shuffles
        coordinate_epochs = self.options["coordinate_epochs"]
        with tqdm(total=coordinate_epochs, desc="coordinate GAN", unit="epoch", leave=False,
                  disable=settings.verbose == 0) as progress:
            self.coordinates.fit(vectors, batch_size=min(settings.batch_size, len(vectors)), epochs=coordinate_epochs,
                                 shuffle=True, verbose=0,
                                 callbacks=[EpochRows("coordinates", log),
                                            keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: progress.update())])

    def sample_centres(self, n: int, seed: int = 0) -> list[np.ndarray]:
        """Star centres (k, 2) x, y in px for each of n fields: 25 generated pairs, those inside [0, 1]²."""
        self.require_trained()
        return [decode_coordinates(vector, self.image_size) for vector in self.coordinates.generate(n, seed)]

    def generate(self, n: int, seed: int = 0) -> np.ndarray:
        """n fields (n, image_size, image_size, 1) float32 in [0, 1]: background, then a star at each centre
        from `sample_centres(n, seed)`."""
        centres = self.sample_centres(n, seed)
        rng = np.random.default_rng([seed, 1])
        fields = self.background.sample((n, self.image_size, self.image_size), rng).astype(np.float32) / 255
        total = sum(len(c) for c in centres)
        stars = self.stars.generate(total, seed=int(rng.integers(2 ** 31)))[..., 0] if total else []
        half, k = self.patch_size // 2, 0
        for field, field_centres in zip(fields, centres):
            for x, y in np.rint(field_centres).astype(int):
                paste_brighter(field, stars[k], y - half, x - half)
                k += 1
        return fields[..., None]

    def sample_grids(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Images for samples/: four generated fields, 64 extracted and 64 generated star patches (4× enlarged)."""
        def enlarged(patches):
            grid = image_grid(np.asarray(patches, np.float32)[..., None], columns=8)
            return cv2.resize(grid, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)

        return {"generated": image_grid(self.generate(4, seed), columns=2, padding=8),
                "stars_extracted": enlarged(self.examples / 255),
                "stars_generated": enlarged(self.stars.generate(EXAMPLE_PATCHES, seed)[..., 0])}

    def save_parts(self, folder: Path) -> None:
        """background.npy, examples.npy, stars.keras and coordinates.keras (the coordinate generator)."""
        np.save(folder / "background.npy", self.background.histogram)
        np.save(folder / "examples.npy", self.examples)
        self.stars.save(folder / "stars.keras")
        self.coordinates.generator.save(folder / "coordinates.keras")

    def load_parts(self, folder: Path) -> None:
        self.background = BackgroundSampler(np.load(folder / "background.npy"))
        self.examples = np.load(folder / "examples.npy")
        self.stars = keras.saving.load_model(folder / "stars.keras")
        self.coordinates.generator.set_weights(keras.saving.load_model(folder / "coordinates.keras").get_weights())


def paste_brighter(field: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Puts `patch` on `field` (both float, in place) with its top-left at (top, left), keeping the brighter
    pixel; the parts outside the field are dropped."""
    height, width = field.shape
    rows = slice(max(0, top), min(height, top + patch.shape[0]))
    columns = slice(max(0, left), min(width, left + patch.shape[1]))
    inner = patch[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left]
    np.maximum(field[rows, columns], inner, out=field[rows, columns])


@register("layered", world="star-fields", capabilities=("generate",), loader=LayeredModel.load)
def layered(image_size: int = FIELD_SIZE, patch_size: int = 30, max_stars: int = 25, threshold: float = 32.0,
            min_distance: int = 15, background_images: int = 1, star_latent_dim: int = 64, star_filters: int = 16,
            star_steps_per_epoch: int = 30, coordinate_latent_dim: int = 32, coordinate_units: int = 256,
            coordinate_epochs: int = 60, learning_rate: float = 2e-4, coordinate_learning_rate: float = 2e-4,
            seed: int = 0) -> LayeredModel:
    """The seed's layered model: i.i.d. background, WGAN-GP stars, fully connected DCGAN coordinates."""
    return LayeredModel(**locals())
