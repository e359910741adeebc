"""Learned similarity scorers (the star-field seed, III.B: docs/background.md): how much an image looks like the
real ones, on the CIL scale 0-8, learned from a scored set (`--dataset star-fields`: the built-in scored fields,
`--dataset cil`: the `scored/` folder of a CIL layout).

- `rf-scorer`: the seed's random forest on hand-made features, the share of pixels per grey-level bin
  (log-spaced bins, since the sky sits below 30 of 255) and the log radially averaged power spectrum.
  The seed reached a mean absolute error of 0.116 with it.
- `cnn-scorer`: the seed's first attempt, a small ResNet-style Keras CNN regressor on images shrunk to
  `input_size` px (MAE 0.63 in the seed). Its pooled features (`encode`) serve `evaluate.py score --features`
  as a star-field feature extractor for the domain FID / KID.

Both are composite models (zoo/parts.py), not one Keras model: `fit_source` reads the
scored images of the training split (scores from `source.metadata(...)["score"]`), reports the MAE on the
held-out split and the MAE of always predicting the training mean, for scale; `score(images) -> (n,)`.

The forest is saved with skops (forest.skops), whose loader builds only the types it is told to trust: the
forest, its trees and NumPy arrays (FOREST_TYPES); a file that holds anything else is refused, so a scorer run
received from someone else cannot run code. Runs saved by older versions hold a pickle (forest.joblib), which
can: it is read only with `trust_pickle=True` (`evaluate.py score --trust-pickle`).
"""
from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
from keras import layers
from tqdm import tqdm

from core.errors import DataError, ModelError
from core.images import grey_levels, resize_batch
from core.metrics import radial_power_spectrum
from core.stars import (PROFILE_RADII, FoundStars, background_level, background_pixels, extract_patches, find_stars,
                        star_shapes)
from core.worlds import SCORE_RANGE
from zoo.parts import CompositeModel, EpochRows, FitSettings, HistoryLog
from zoo.registry import register

FOREST_TYPES = ["sklearn.tree._tree.Tree"]     # beyond what skops trusts already (the estimators, NumPy)
READ_CHUNK = 32     # scored images read and turned into features at once (32 fields of 1000² are 32 MB)


def scored_images(source, description: str, verbose: int | str = "auto"
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images float32 NHWC in [0, 1], scores) of a scored source, chunk by chunk."""
    try:
        scores = np.asarray(source.metadata(np.arange(len(source)))["score"], np.float64)
    except KeyError:
        raise DataError(f"dataset '{source.name}' has no scores to learn from. Train a scorer with "
                        "--dataset star-fields (built-in scored fields) or --dataset cil --data-dir DIR") from None
    with tqdm(total=len(source), desc=description, unit="img", leave=False, disable=verbose == 0) as progress:
        for start in range(0, len(source), READ_CHUNK):
            batch = np.stack(source.read(start, start + READ_CHUNK)[0]).astype(np.float32) / 255
            progress.update(len(batch))
            yield (batch if batch.ndim == 4 else batch[..., None]), scores[start:start + len(batch)]


def validation_plot(true: np.ndarray, predicted: np.ndarray, title: str) -> np.ndarray:
    """RGB image of predicted against true scores on the held-out split (samples/validation.png)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    axis.scatter(true, predicted, s=8, alpha=0.6)
    axis.plot(SCORE_RANGE, SCORE_RANGE, color="0.5", linewidth=1)
    axis.set(xlim=SCORE_RANGE, ylim=SCORE_RANGE, xlabel="true score", ylabel="predicted score", title=title)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


class Scorer(CompositeModel):
    """What both scorers share: the held-out MAE row and samples/validation.png."""

    def __init__(self):
        self.validation: tuple[np.ndarray, np.ndarray] | None = None     # true and predicted held-out scores

    def inputs(self, images: np.ndarray) -> np.ndarray:
        """What the model learns from, for a batch of images in [0, 1]."""
        raise NotImplementedError

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """(n,) scores of prepared inputs."""
        raise NotImplementedError

    def score(self, images: np.ndarray) -> np.ndarray:
        """(n,) scores 0-8 of images float32 NHWC in [0, 1] (rf-scorer: at least 2·bands px)."""
        self.require_trained()
        return self.predict(self.inputs(images))

    def features_and_scores(self, source, verbose: int | str = "auto"):
        """The inputs of every scored image of `source` (one array, or a list of arrays for a model of several
        inputs), and the scores."""
        chunks = [(self.inputs(images), scores) for images, scores in scored_images(source, self.name, verbose)]
        scores = np.concatenate([s for _, s in chunks])
        if isinstance(chunks[0][0], list):
            return [np.concatenate([x[part] for x, _ in chunks]) for part in range(len(chunks[0][0]))], scores
        return np.concatenate([x for x, _ in chunks]), scores

    def held_out_row(self, true: np.ndarray, predicted: np.ndarray, train_scores: np.ndarray) -> dict:
        """val_mae on the held-out split, beside val_mae_of_mean, the MAE of always predicting the training mean."""
        self.validation = (true, predicted)
        return {"val_mae": float(np.mean(np.abs(predicted - true))),
                "val_mae_of_mean": float(np.mean(np.abs(train_scores.mean() - true)))}

    def sample_grids(self, seed: int = 0) -> dict[str, np.ndarray]:
        """samples/validation.png: predicted against true held-out scores (nothing without a held-out split)."""
        if self.validation is None:
            return {}
        true, predicted = self.validation
        mae = np.mean(np.abs(predicted - true))
        return {"validation": validation_plot(true, predicted, f"{self.name}: held-out MAE {mae:.3f}")}


# The random forest ------------------------------------------------------------------------------------------

def histogram_bin_starts(bins: int) -> np.ndarray:
    """First grey level of each of `bins` bins, about log-spaced over 0-255: 2-3 levels wide in the dark sky,
    20-30 among the bright star pixels (32 bins)."""
    edges = np.unique(np.floor(np.geomspace(1, 256, 4 * bins)).astype(np.int64) - 1)
    return edges[np.round(np.linspace(0, len(edges) - 1, bins)).astype(int)] if len(edges) > bins else edges


def image_features(images: np.ndarray, bins: int = 32, bands: int = 32) -> np.ndarray:
    """(n, bins + bands) features of images in [0, 1]: the share of pixels in each log-spaced grey-level bin,
    then the log10 radially averaged power spectrum (core.metrics.radial_power_spectrum)."""
    levels = grey_levels(images).reshape(len(images), -1)
    starts = histogram_bin_starts(bins)
    shares = np.stack([np.add.reduceat(np.bincount(row, minlength=256), starts) for row in levels]) / levels.shape[1]
    return np.concatenate([shares, radial_power_spectrum(images, bands)], axis=1).astype(np.float32)


SKY_QUANTILES = (1, 5, 25, 50, 75, 95, 99)     # percentiles of the sky's grey levels
TEXTURE_LAGS = (1, 2, 4, 8)                    # px, lags of the sky's autocorrelation
SKY_BANDS = 16                                 # radial bands of the sky's power spectrum
PATCH_BANDS = 8                                # radial bands of a star patch's power spectrum
NO_STARS = -1.0                                # star features of a field without stars


def star_features(field: np.ndarray, stars: FoundStars) -> np.ndarray:
    """What the stars of one uint8 field look like: log star count, median profile / edge steepness / fill
    (core.stars.star_shapes), the share of square-filled stars, 10th / 50th / 90th percentile half-maximum
    radius, log median peak, and the median power spectrum of the star patches (normalised by their peak)."""
    size = len(PROFILE_RADII) + 2 + 1 + 3 + 1 + PATCH_BANDS
    if not len(stars):
        return np.concatenate([[0.0], np.full(size, NO_STARS)]).astype(np.float32)
    shapes = star_shapes(field, stars)
    patches = extract_patches(field, stars).astype(np.float32) - background_level(field)
    patches /= np.maximum(stars.peak, 1.0)[:, None, None].astype(np.float32)
    return np.concatenate([[np.log1p(len(stars))], np.median(shapes, axis=0), [np.mean(shapes[:, -1] > 0.9)],
                           np.percentile(stars.radius, (10, 50, 90)), [np.log1p(np.median(stars.peak))],
                           np.median(radial_power_spectrum(patches[..., None], PATCH_BANDS), axis=0)]
                          ).astype(np.float32)


def sky_features(field: np.ndarray, stars: FoundStars) -> np.ndarray:
    """What the sky of one uint8 field looks like (pixels outside the star patches, and the field clipped at the
    sky's 99th percentile): SKY_QUANTILES, its coefficient of variation and share of black pixels, the
    autocorrelation at TEXTURE_LAGS (grain against blocky or smoothed skies), the share of equal neighbours
    (repeated pixels), the largest step between neighbouring row and column means over the median one (seams of
    stitched tiles), and the log power spectrum of the clipped field in SKY_BANDS bands."""
    sky = background_pixels(field, stars)
    cumulative = np.cumsum(np.bincount(sky, minlength=256)) / max(len(sky), 1)
    quantiles = np.searchsorted(cumulative, np.asarray(SKY_QUANTILES) / 100).astype(np.float32)
    sky = sky.astype(np.float32)
    clipped = np.minimum(field, max(quantiles[-1], 1)).astype(np.float32)
    centred = clipped - clipped.mean()
    variance = max(float(np.mean(centred ** 2)), 1e-6)
    correlations = [(np.mean(centred[:, lag:] * centred[:, :-lag]) + np.mean(centred[lag:] * centred[:-lag]))
                    / (2 * variance) for lag in TEXTURE_LAGS]
    ties = np.mean(clipped[:, 1:] == clipped[:, :-1])
    steps = [np.abs(np.diff(clipped.mean(axis=axis))) for axis in (0, 1)]
    seams = [step.max() / max(float(np.median(step)), 1e-3) for step in steps]
    return np.concatenate([quantiles, [sky.std() / max(float(sky.mean()), 1e-3) if len(sky) else 0.0,
                                       np.mean(sky == 0) if len(sky) else 0.0],
                           correlations, [ties], seams,
                           radial_power_spectrum(clipped[None, ..., None] / 255, SKY_BANDS)[0]]).astype(np.float32)


def shape_features(images: np.ndarray) -> np.ndarray:
    """(n, SHAPE_FEATURES) star and sky features of images in [0, 1] (their first channel as grey levels), one
    field per thread (OpenCV and NumPy release the GIL)."""
    def one(field: np.ndarray) -> np.ndarray:
        stars = find_stars(field)
        return np.concatenate([star_features(field, stars), sky_features(field, stars)])

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return np.stack(list(pool.map(one, grey_levels(images)[..., 0])))


SHAPE_FEATURES = 1 + len(PROFILE_RADII) + 2 + 1 + 3 + 1 + PATCH_BANDS + len(SKY_QUANTILES) + 2 + len(TEXTURE_LAGS) \
    + 1 + 2 + SKY_BANDS
FEATURE_SETS = ("histogram-spectrum", "shapes")     # what the forest learns from; "shapes" adds shape_features


class ForestScorer(Scorer):
    """scikit-learn RandomForestRegressor on `image_features`, and with features="shapes" also on
    `shape_features`. A run saved before `features` existed has none in parts.json and gets what it learned
    from, the histogram and the spectrum."""

    name = "rf-scorer"

    def __init__(self, *, bins: int, bands: int, trees: int, min_samples_leaf: int, max_features: float, seed: int,
                 features: str = "histogram-spectrum"):
        super().__init__()
        self.options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        if len(histogram_bin_starts(bins)) != bins or bins < 2 or bands < 1 or trees < 1:
            raise ModelError(f"rf-scorer needs 2-256 histogram bins, at least 1 spectrum band and 1 tree, got "
                             f"bins={bins}, bands={bands}, trees={trees}. Use e.g. --option bins=32")
        if features not in FEATURE_SETS:
            raise ModelError(f"rf-scorer has no feature set '{features}'. Use --option features="
                             f"{' or features='.join(FEATURE_SETS)}")
        self.forest = None

    def inputs(self, images: np.ndarray) -> np.ndarray:
        smallest, bands = min(np.shape(images)[1:3]), self.options["bands"]
        if smallest < 2 * max(bands, SKY_BANDS if self.options["features"] == "shapes" else 0):
            raise ModelError(f"rf-scorer needs images of at least {2 * bands} px for its {bands}-band power "
                             f"spectrum, got {smallest} px. Score larger images (whole star fields)")
        pixels = image_features(images, self.options["bins"], bands)
        if self.options["features"] == "shapes":
            return np.concatenate([pixels, shape_features(images)], axis=1)
        return pixels

    @property
    def trained(self) -> bool:
        return self.forest is not None

    def fit_parts(self, source, validation, settings: FitSettings, log: HistoryLog) -> None:
        """Features of every training image, one forest (epochs, batches and steps do not apply), then the
        held-out MAE; hands `log` one history row."""
        from sklearn.ensemble import RandomForestRegressor

        started = time.perf_counter()
        features, scores = self.features_and_scores(source, settings.verbose)
        self.forest = RandomForestRegressor(
            self.options["trees"], min_samples_leaf=self.options["min_samples_leaf"],
            max_features=self.options["max_features"], random_state=self.options["seed"], n_jobs=-1)
        self.forest.fit(features, scores)
        row = {"part": "forest", "epoch": 0, "images": len(scores)}
        if validation is not None and len(validation):
            held_out, true = self.features_and_scores(validation, settings.verbose)
            row.update(self.held_out_row(true, self.predict(held_out), scores))
        log({**row, "seconds": time.perf_counter() - started})

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.forest.predict(features).astype(np.float32)

    def save_parts(self, folder: Path) -> None:
        """forest.skops: the forest in skops' format, which loads without running code."""
        import skops.io

        skops.io.dump(self.forest, folder / "forest.skops")

    def load_parts(self, folder: Path) -> None:
        """Reads forest.skops, refusing it when it holds any type but a forest's; an old run's forest.joblib (a
        pickle, which runs code when read) only when `trust_pickle` is set."""
        import skops.io

        safe, pickled = folder / "forest.skops", folder / "forest.joblib"
        if safe.exists() or not pickled.exists():
            foreign = sorted(set(skops.io.get_untrusted_types(file=safe)) - set(FOREST_TYPES))
            if foreign:
                raise ModelError(f"{safe} was refused: it holds {', '.join(foreign)}, which a random forest does "
                                 "not. Use a scorer run you trained yourself")
            self.forest = skops.io.load(safe, trusted=FOREST_TYPES)
        elif self.trust_pickle:
            import joblib

            self.forest = joblib.load(pickled)
        else:
            raise ModelError(f"{pickled} is a pickle from an older version, and reading a pickle can run any code. "
                             "Pass --trust-pickle if you trust where the run came from, or train the scorer again")


@register("rf-scorer", world="star-fields", capabilities=("score",), loader=ForestScorer.load)
def rf_scorer(bins: int = 32, bands: int = 32, trees: int = 300, min_samples_leaf: int = 1, max_features: float = 0.5,
              seed: int = 0, features: str = "shapes") -> ForestScorer:
    """The seed's random-forest scorer on a pixel histogram and a power spectrum, with star shapes and sky
    texture (features="histogram-spectrum": the seed's features alone)."""
    return ForestScorer(**locals())


# The CNN -----------------------------------------------------------------------------------------------------

def residual_block(x, filters: int, strides: int):
    """Two 3×3 convolutions with BatchNorm and a shortcut: average pooling then a 1×1 convolution when the shape
    changes (ResNet-D's shortcut; a strided 1×1 convolution also corrupts the heap in TensorFlow 2.21's oneDNN
    CPU kernels, an abort at the first training step)."""
    shortcut = x
    if strides != 1:
        shortcut = layers.AveragePooling2D(strides)(shortcut)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.BatchNormalization()(layers.Conv2D(filters, 1, use_bias=False)(shortcut))
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(x))
    return layers.ReLU()(layers.Add()([x, shortcut]))


def build_cnn(input_size: int, channels: int, widths: tuple[int, ...], feature_dim: int,
              shape_inputs: int = 0) -> keras.Model:
    """Stem (3×3, stride 2), one residual block per width (stride 2 after the first), global average pooling,
    a `features` layer and one linear output, the score. With `shape_inputs`, a second input of that many
    shape_features joins the pooled image (standardised by a `shape_scale` Normalization layer, adapted when
    the scorer trains) before the `features` layer."""
    inputs = keras.Input((input_size, input_size, channels))
    x = layers.ReLU()(layers.BatchNormalization()(
        layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False)(inputs)))
    for level, filters in enumerate(widths):
        x = residual_block(x, filters, strides=1 if level == 0 else 2)
    pooled = layers.GlobalAveragePooling2D()(x)
    if shape_inputs:
        shapes = keras.Input((shape_inputs,))
        scaled = layers.Normalization(name="shape_scale")(shapes)
        shape_part = layers.Dense(feature_dim, activation="relu")(scaled)
        pooled, inputs = layers.Concatenate()([pooled, shape_part]), [inputs, shapes]
    features = layers.Dense(feature_dim, activation="relu", name="features")(pooled)
    return keras.Model(inputs, layers.Dense(1, name="score")(features), name="cnn_scorer")


class CNNScorer(Scorer):
    """A Keras CNN regressor on images shrunk to input_size px (area averaging, then a square root that spreads
    the dark sky's levels); the images are prepared in NumPy, the network is plain Keras (any backend).

    Shrunk to 128 px a star is 1-2 px wide, so its shape is lost; with features="shapes" the network also takes
    the fields' shape_features (star profiles and sky texture at full resolution) as a second input. A run saved
    before `features` existed has none in parts.json and gets the image alone, as it was trained."""

    name = "cnn-scorer"

    def __init__(self, *, input_size: int, channels: int, widths: tuple[int, ...], feature_dim: int,
                 learning_rate: float, features: str = "image"):
        super().__init__()
        self.options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        self.options["widths"] = list(widths)
        if input_size < 2 ** (len(widths) + 1) or not widths:
            raise ModelError(f"cnn-scorer needs an input size of at least {2 ** (len(widths) + 1)} px for "
                             f"{len(widths)} blocks, got {input_size}. Use --option input_size=128")
        if features not in ("image", "shapes"):
            raise ModelError(f"cnn-scorer has no feature set '{features}'. Use --option features=shapes or "
                             "features=image")
        self.network = build_cnn(input_size, channels, tuple(widths), feature_dim,
                                 SHAPE_FEATURES if features == "shapes" else 0)
        self.network.compile(keras.optimizers.Adam(learning_rate), loss=keras.losses.Huber(), metrics=["mae"])
        self.fitted = False

    @property
    def trained(self) -> bool:
        return self.fitted

    def count_params(self) -> int:
        return self.network.count_params()

    def inputs(self, images: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Images in [0, 1] → (n, input_size, input_size, channels): area-averaged, then square-rooted; with
        features="shapes", [those, their shape_features]."""
        size, channels = self.options["input_size"], self.options["channels"]
        images = np.asarray(images, np.float32)
        if images.shape[-1] != channels:
            raise ModelError(f"cnn-scorer was built for {channels}-channel images, got {images.shape[-1]}. "
                             "Pass images like the ones it was trained on")
        shrunk = np.sqrt(np.clip(resize_batch(images, size), 0, 1))
        return [shrunk, shape_features(images)] if self.options["features"] == "shapes" else shrunk

    def fit_parts(self, source, validation, settings: FitSettings, log: HistoryLog) -> None:
        """Shrinks every training image once, fits the network for `epochs` (Keras' own validation on the
        held-out split each epoch, one history row per epoch), then one row with the final held-out MAE."""
        inputs, scores = self.features_and_scores(source, settings.verbose)
        held_out = (self.features_and_scores(validation, settings.verbose)
                    if validation is not None and len(validation) else None)
        if self.options["features"] == "shapes":
            self.network.get_layer("shape_scale").adapt(inputs[1])
        self.network.fit(inputs, scores, batch_size=settings.batch_size, epochs=settings.epochs,
                         steps_per_epoch=settings.steps_per_epoch, validation_data=held_out,
                         callbacks=[EpochRows("cnn", log)], verbose=settings.verbose)
        self.fitted = True
        if held_out is not None:
            log({"part": "validation", "epoch": settings.epochs - 1,
                 **self.held_out_row(held_out[1], self.predict(held_out[0]), scores)})

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.clip(self.network.predict(inputs, batch_size=64, verbose=0)[:, 0], *SCORE_RANGE)

    @functools.cached_property
    def extractor(self) -> keras.Model:
        return keras.Model(self.network.inputs, self.network.get_layer("features").output)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(n, feature_dim) activations of the `features` layer: a star-field feature space for FID / KID."""
        return self.extractor.predict(self.inputs(images), batch_size=64, verbose=0)

    def save_parts(self, folder: Path) -> None:
        self.network.save(folder / "cnn.keras")

    def load_parts(self, folder: Path) -> None:
        self.network = keras.saving.load_model(folder / "cnn.keras")
        self.fitted = True


@register("cnn-scorer", world="star-fields", capabilities=("score", "encode"), loader=CNNScorer.load)
def cnn_scorer(input_size: int = 128, channels: int = 1, widths: tuple[int, ...] = (8, 16, 32, 64),
               feature_dim: int = 64, learning_rate: float = 1e-3, features: str = "shapes") -> CNNScorer:
    """A small ResNet-style CNN regressor of the score on shrunk images and their shape_features
    (features="image": the shrunk images alone); `encode` gives its features."""
    return CNNScorer(**locals())
