"""The seed's layered statistical model (../shared/seeds/000_*.txt, III.A.3): a star field is generated as three
independent layers, each learned by the simplest thing that works.

1. Extraction. A Gaussian filter the size of a star core scores every pixel as the centre of a 30×30 patch;
   pixels above a threshold that are the highest within `min_distance` (non-maximum suppression) are
   stars. Each star gives its 30×30 patch and its centre; the pixels outside every patch are the background.
2. Background: no training. Pixels are drawn i.i.d. from the brightness histogram of the background of one
   real field (the seed found one image best; `background_images` takes more).
3. Stars: the zoo's WGAN-GP (zoo/wgan_gp.py) on the 30×30 patches.
   Coordinates: a DCGAN whose generator and discriminator are fully connected ("fully linear"); the
   generator ends in tanh and outputs 50 values, 25 (x, y) pairs scaled to [0, 1], fields with fewer
   stars padded with -1.

Generation draws the background, 25 pairs, keeps those with both coordinates in [0, 1] and pastes a
generated star at each (scaled to the field size) by taking the brighter pixel, so the star's own
background blends into the sampled one. The trained model is saved as a folder of parts: parts.json
(options), background.npy (the histogram), stars.keras (the WGAN), coordinates.keras (the coordinate
generator) and examples.npy (extracted patches shown in samples/).

Backends: extraction, the background sampler and generation are numpy / OpenCV and Keras inference, so a
trained model generates on any backend; the two GANs train with TensorFlow (zoo/gan.py's train step).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import layers, ops
from scipy import ndimage
from tqdm import tqdm

from datasets.source import ArraySource, DataError, Source
from evaluation.files import image_grid
from zoo.gan import GAN, check_train_backend
from zoo.registry import ModelError, create, register

GREY_LEVELS = 256
FILTER_SIGMA = 2.5          # px, the Gaussian that scores star centres (about a small star's core)
CENTROID_RADIUS = 6         # px, window of the intensity-weighted centre refinement
SIZE_RADIUS = 15            # px, window in which a star's half-maximum area is measured
QUANTILE_STEPS = 2 ** 16    # resolution of the background sampler's inverse CDF
EXAMPLE_PATCHES = 64        # extracted patches kept to show in samples/
FIELDS_PER_READ = 16


# 1. Extraction ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FoundStars:
    """Stars found in one field: centres x, y (px, sub-pixel), peak height above the background (grey
    levels) and half-maximum radius (px), strongest filter response first."""

    x: np.ndarray
    y: np.ndarray
    peak: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def background_level(field: np.ndarray) -> float:
    """The median grey level of a uint8 field: the sky, since stars cover a few percent of it."""
    cumulative = np.cumsum(np.bincount(field.ravel(), minlength=GREY_LEVELS))
    return float(np.searchsorted(cumulative, field.size / 2))


def find_stars(field: np.ndarray, threshold: float = 32.0, min_distance: int = 15) -> FoundStars:
    """The stars of a uint8 (H, W) field.

    The field minus its median is smoothed by a Gaussian of FILTER_SIGMA px; local maxima of that response
    higher than `threshold` grey levels are candidates, and greedy non-maximum suppression keeps the
    strongest of any candidates closer than `min_distance` px. Centres are refined to the intensity-weighted
    centroid around the maximum; the radius is that of a disc with the area of the star's connected pixels
    above half its peak.
    """
    level = background_level(field)
    excess = field.astype(np.float32) - np.float32(level)
    response = cv2.GaussianBlur(excess, (0, 0), FILTER_SIGMA)
    window = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * min_distance + 1, 2 * min_distance + 1))
    rows, columns = np.nonzero(response > threshold)
    is_peak = response[rows, columns] >= cv2.dilate(response, window)[rows, columns]
    rows, columns = rows[is_peak], columns[is_peak]
    order = np.argsort(-response[rows, columns], kind="stable")
    kept: list[tuple[int, int]] = []
    for row, column in zip(rows[order], columns[order]):
        if all((row - r) ** 2 + (column - c) ** 2 >= min_distance ** 2 for r, c in kept):
            kept.append((int(row), int(column)))
    x, y, peak, radius = (np.zeros(len(kept)) for _ in range(4))
    for k, (row, column) in enumerate(kept):
        top, left = max(0, row - CENTROID_RADIUS), max(0, column - CENTROID_RADIUS)
        core = np.clip(excess[top:row + CENTROID_RADIUS + 1, left:column + CENTROID_RADIUS + 1], 0, None)
        grid_y, grid_x = np.mgrid[top:top + core.shape[0], left:left + core.shape[1]]
        x[k], y[k] = (grid_x * core).sum() / core.sum(), (grid_y * core).sum() / core.sum()
        peak[k] = core.max()
        brightest = np.unravel_index(np.argmax(core), core.shape) + np.array([top, left])
        top, left = max(0, row - SIZE_RADIUS), max(0, column - SIZE_RADIUS)
        regions, _ = ndimage.label(excess[top:row + SIZE_RADIUS + 1, left:column + SIZE_RADIUS + 1] >= peak[k] / 2)
        star = regions == regions[brightest[0] - top, brightest[1] - left]     # not noise above half the peak
        radius[k] = np.sqrt(np.count_nonzero(star) / np.pi)
    return FoundStars(x=x, y=y, peak=peak, radius=radius)


def extract_patches(field: np.ndarray, stars: FoundStars, patch_size: int = 30) -> np.ndarray:
    """uint8 (k, patch_size, patch_size) patches centred on the stars; beyond the edge, the median sky."""
    half = patch_size // 2
    padded = cv2.copyMakeBorder(field, half, half, half, half, cv2.BORDER_CONSTANT, value=background_level(field))
    rows, columns = np.rint(stars.y).astype(int), np.rint(stars.x).astype(int)
    return np.stack([padded[r:r + patch_size, c:c + patch_size] for r, c in zip(rows, columns)]
                    or np.zeros((0, patch_size, patch_size), np.uint8))


def background_pixels(field: np.ndarray, stars: FoundStars, patch_size: int = 30) -> np.ndarray:
    """The field's pixels outside every star patch (1-d uint8): the background with the stars removed."""
    keep = np.ones(field.shape, bool)
    half = patch_size // 2
    for row, column in zip(np.rint(stars.y).astype(int), np.rint(stars.x).astype(int)):
        keep[max(0, row - half):row + half, max(0, column - half):column + half] = False
    return field[keep]


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


def stars_of_fields(source: Source, image_size: int, threshold: float, min_distance: int,
                    description: str, verbose: int | str = "auto") -> Iterator[tuple[np.ndarray, FoundStars]]:
    """(field uint8 (H, W), its stars) for every image of the source, in order, with a progress bar
    (none when `verbose` is 0, as in Keras' fit).

    Blocks of fields are searched on all cores by threads (NumPy and OpenCV release the GIL); DataError
    unless the images are `image_size` square and single-channel.
    """
    with ThreadPoolExecutor(os.cpu_count()) as pool, \
            tqdm(total=len(source), desc=description, unit="field", leave=False, disable=verbose == 0) as progress:
        for start in range(0, len(source), FIELDS_PER_READ):
            images, _ = source.read(start, min(start + FIELDS_PER_READ, len(source)))
            fields = [as_field(np.asarray(image), image_size, source.name) for image in images]
            for field, stars in zip(fields, pool.map(lambda f: find_stars(f, threshold, min_distance), fields)):
                yield field, stars
                progress.update()


def as_field(image: np.ndarray, image_size: int, dataset: str) -> np.ndarray:
    """A source image as a uint8 (image_size, image_size) field, or a DataError saying what to pass."""
    if image.shape[:2] != (image_size, image_size) or image.ndim == 3 and image.shape[-1] != 1:
        raise DataError(f"dataset '{dataset}' gives {'×'.join(map(str, image.shape))} images but star-field "
                        f"models need {image_size}×{image_size}×1 fields. Use --dataset star-fields or cil, "
                        f"or --image-size {image.shape[0]}")
    return image.reshape(image_size, image_size)


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

    def __init__(self, max_stars: int = 25, latent_dim: int = 32, units: int = 256, seed: int = 0, **kwargs):
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

class EpochRows(keras.callbacks.Callback):
    """Hands every finished epoch of a Keras fit to `log` as a history row: part, epoch, losses, seconds."""

    def __init__(self, part: str, log: Callable[[dict], None]):
        super().__init__()
        self.part, self.log = part, log

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.log({"part": self.part, "epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()},
                  "seconds": time.perf_counter() - self.started})


class LayeredModel:
    """Background sampler + star WGAN + coordinate DCGAN, trained from whole fields by `fit_source`."""

    train_backends = GAN.train_backends     # its two GANs train with TensorFlow

    def __init__(self, *, image_size: int, patch_size: int, max_stars: int, threshold: float, min_distance: int,
                 background_images: int, star_latent_dim: int, star_filters: int, star_steps_per_epoch: int,
                 coordinate_latent_dim: int, coordinate_units: int, coordinate_epochs: int, learning_rate: float,
                 coordinate_learning_rate: float, seed: int):
        self.options = {name: value for name, value in locals().items() if name != "self"}
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

    def extract(self, source: Source, verbose: int | str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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

    def fit_source(self, source: Source, *, validation: Source | None = None, epochs: int, batch_size: int,
                   steps_per_epoch: int | None = None, seed: int = 0, log: Callable[[dict], None] = lambda row: None,
                   verbose: int | str = "auto") -> None:
        """Extraction and background (one pass over the fields), then the star WGAN for `epochs` epochs of
        `steps_per_epoch` generator steps (default: the `star_steps_per_epoch` option; a pass over ~10,000
        patches would take many minutes on a laptop CPU, a few hundred steps already give stars), then
        `coordinate_epochs` passes of the coordinate DCGAN. Each stage and epoch goes to `log` as a history row.
        The held-out `validation` fields are not used: the GANs have no validation loss to watch."""
        check_train_backend(self, "layered")
        from datasets.pipeline import make_dataset     # tf.data, imported to train only: generation runs anywhere

        started = time.perf_counter()
        patches, vectors, histogram = self.extract(source, verbose)
        if len(patches) == 0:
            raise DataError(f"no stars found in the {len(source)} fields of '{source.name}' (threshold "
                            f"{self.options['threshold']} grey levels). Check the data or lower "
                            "--option threshold=...")
        self.background = BackgroundSampler(histogram)
        self.examples = patches[np.random.default_rng(seed).permutation(len(patches))[:EXAMPLE_PATCHES]]
        log({"part": "extraction", "epoch": 0, "fields": len(vectors), "stars": len(patches),
             "seconds": time.perf_counter() - started})
        star_data = make_dataset(ArraySource(patches[..., None]), image_size=self.patch_size, batch_size=batch_size,
                                 shuffle=True, augment=True, repeat=True, seed=seed)
        steps_per_epoch = steps_per_epoch or self.options["star_steps_per_epoch"]
        self.stars.fit(star_data, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[EpochRows("stars", log)],
                       shuffle=False, verbose=verbose)     # make_dataset already shuffles
        coordinate_epochs = self.options["coordinate_epochs"]
        with tqdm(total=coordinate_epochs, desc="coordinate GAN", unit="epoch", leave=False,
                  disable=verbose == 0) as progress:
            self.coordinates.fit(vectors, batch_size=min(batch_size, len(vectors)), epochs=coordinate_epochs,
                                 shuffle=True, verbose=0,
                                 callbacks=[EpochRows("coordinates", log),
                                            keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: progress.update())])

    def sample_centres(self, n: int, seed: int = 0) -> list[np.ndarray]:
        """Star centres (k, 2) x, y in px for each of n fields: 25 generated pairs, those inside [0, 1]²."""
        if self.background is None:
            raise ModelError("the layered model is not trained yet. Train it with "
                             "'python train.py --model layered' and load the run with zoo.load")
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

    def save(self, folder: str | Path) -> None:
        """Writes the parts into `folder` (which exists): parts.json, background.npy, stars.keras,
        coordinates.keras, examples.npy."""
        folder = Path(folder)
        (folder / "parts.json").write_text(json.dumps({"model": "layered", "options": self.options}, indent=2) + "\n")
        np.save(folder / "background.npy", self.background.histogram)
        np.save(folder / "examples.npy", self.examples)
        self.stars.save(folder / "stars.keras")
        self.coordinates.generator.save(folder / "coordinates.keras")

    @classmethod
    def load(cls, folder: str | Path) -> LayeredModel:
        folder = Path(folder)
        try:
            options = json.loads((folder / "parts.json").read_text())["options"]
            model = cls(**options)
            model.background = BackgroundSampler(np.load(folder / "background.npy"))
            model.examples = np.load(folder / "examples.npy")
            model.stars = keras.saving.load_model(folder / "stars.keras")
            model.coordinates.generator.set_weights(keras.saving.load_model(folder / "coordinates.keras").get_weights())
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{folder} is not a complete layered model ({error}). Train it again") from None
        return model


def paste_brighter(field: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Puts `patch` on `field` (both float, in place) with its top-left at (top, left), keeping the brighter
    pixel; the parts outside the field are dropped."""
    height, width = field.shape
    rows = slice(max(0, top), min(height, top + patch.shape[0]))
    columns = slice(max(0, left), min(width, left + patch.shape[1]))
    inner = patch[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left]
    np.maximum(field[rows, columns], inner, out=field[rows, columns])


@register("layered", world="star-fields", capabilities=("generate",), loader=LayeredModel.load)
def layered(image_size: int = 1000, patch_size: int = 30, max_stars: int = 25, threshold: float = 32.0,
            min_distance: int = 15, background_images: int = 1, star_latent_dim: int = 64, star_filters: int = 16,
            star_steps_per_epoch: int = 30, coordinate_latent_dim: int = 32, coordinate_units: int = 256,
            coordinate_epochs: int = 60, learning_rate: float = 2e-4, coordinate_learning_rate: float = 2e-4,
            seed: int = 0) -> LayeredModel:
    """The seed's layered model: i.i.d. background, WGAN-GP stars, fully connected DCGAN coordinates."""
    return LayeredModel(**locals())
