"""The seed's naive statistical model (the star-field seed, III.A.2: docs/background.md): white circles on black.

Training counts, over the real fields, how often a star's centre falls in each 10×10 px tile (normalised:
the probability that a star lies there), how many stars a field has and how large they are; stars are found
with the shared star extraction (core/stars.py: filter, threshold, non-maximum suppression), their size
is the half-maximum radius. A new field draws a star count, that many tiles from the tile distribution (a
uniform point inside each) and a radius for each from the observed radii, and paints filled white circles on
a black 1000×1000 image. No Keras: numpy and OpenCV, any backend. A composite model (zoo/parts.py), saved as a
folder of parts: parts.json (options) and statistics.npz (tile probabilities, count probabilities, radii).
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from core.errors import ModelError
from core.images import image_grid
from core.stars import no_stars_error, stars_of_fields
from core.worlds import FIELD_SIZE
from zoo.parts import CompositeModel, FitSettings, HistoryLog
from zoo.registry import register

SUBPIXEL_BITS = 4        # cv2.circle draws centres and radii to 1/16 px


class NaiveModel(CompositeModel):
    """Per-tile star probabilities, a star-count distribution and the observed radii."""

    name = "naive"

    def __init__(self, *, image_size: int, tile_size: int, threshold: float, min_distance: int):
        self.options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        if tile_size <= 0 or image_size % tile_size:
            raise ModelError(f"naive needs a tile size that divides the image size {image_size}, got {tile_size}. "
                             "Use --option tile_size=10")
        self.image_size, self.tile_size = image_size, tile_size
        self.tiles_per_side = image_size // tile_size
        self.tile_probabilities: np.ndarray | None = None    # (tiles_per_side, tiles_per_side), sums to 1
        self.count_probabilities: np.ndarray | None = None   # P(count = k), k = 0..max seen
        self.radii: np.ndarray | None = None                 # px, every star seen

    @property
    def trained(self) -> bool:
        return self.tile_probabilities is not None

    def fit_parts(self, source, validation, settings: FitSettings, log: HistoryLog) -> None:
        """One pass over the fields (epochs, batches and steps do not apply, nor the held-out `validation`
        fields: counts have nothing to tune); hands `log` one history row."""
        started = time.perf_counter()
        tile_counts = np.zeros((self.tiles_per_side, self.tiles_per_side), np.int64)
        star_counts, radii = [], []
        for _, stars in stars_of_fields(source, self.image_size, self.options["threshold"],
                                        self.options["min_distance"], "counting stars", settings.verbose):
            rows = np.clip(stars.y // self.tile_size, 0, self.tiles_per_side - 1).astype(int)
            columns = np.clip(stars.x // self.tile_size, 0, self.tiles_per_side - 1).astype(int)
            np.add.at(tile_counts, (rows, columns), 1)
            star_counts.append(len(stars))
            radii.append(stars.radius)
        if tile_counts.sum() == 0:
            raise no_stars_error(len(star_counts), source.name, self.options["threshold"])
        self.tile_probabilities = tile_counts / tile_counts.sum()
        self.count_probabilities = np.bincount(star_counts) / len(star_counts)
        self.radii = np.concatenate(radii).astype(np.float32)
        log({"part": "statistics", "epoch": 0, "fields": len(star_counts), "stars": int(tile_counts.sum()),
             "seconds": time.perf_counter() - started})

    def sample_stars(self, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each of n fields: star centres (k, 2) x, y in px and radii (k,), drawn from the statistics."""
        self.require_trained()
        rng = np.random.default_rng(seed)
        fields = []
        for count in rng.choice(len(self.count_probabilities), n, p=self.count_probabilities):
            tiles = rng.choice(self.tile_probabilities.size, count, p=self.tile_probabilities.ravel())
            rows, columns = np.divmod(tiles, self.tiles_per_side)
            centres = (np.stack([columns, rows], axis=1) + rng.random((count, 2))) * self.tile_size
            fields.append((centres, rng.choice(self.radii, count)))
        return fields

    def generate(self, n: int, seed: int = 0) -> np.ndarray:
        """n fields (n, image_size, image_size, 1) float32: filled white circles (1.0) on black (0.0)."""
        images = np.zeros((n, self.image_size, self.image_size), np.uint8)
        scale = 2 ** SUBPIXEL_BITS
        for image, (centres, radii) in zip(images, self.sample_stars(n, seed)):
            for (x, y), radius in zip(centres, radii):
                cv2.circle(image, (round(x * scale), round(y * scale)), round(radius * scale), 255, cv2.FILLED,
                           cv2.LINE_AA, SUBPIXEL_BITS)
        return images[..., None].astype(np.float32) / 255

    def sample_grids(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Images for samples/: four generated fields and the tile probabilities (white = most likely)."""
        probabilities = self.tile_probabilities / self.tile_probabilities.max()
        heat_map = cv2.resize(probabilities.astype(np.float32), (self.image_size // 2,) * 2,
                              interpolation=cv2.INTER_NEAREST)
        return {"generated": image_grid(self.generate(4, seed), columns=2, padding=8),
                "tile_probabilities": heat_map[..., None]}

    def save_parts(self, folder: Path) -> None:
        np.savez(folder / "statistics.npz", tile_probabilities=self.tile_probabilities,
                 count_probabilities=self.count_probabilities, radii=self.radii)

    def load_parts(self, folder: Path) -> None:
        with np.load(folder / "statistics.npz") as statistics:
            self.tile_probabilities = statistics["tile_probabilities"]
            self.count_probabilities = statistics["count_probabilities"]
            self.radii = statistics["radii"]


@register("naive", world="star-fields", capabilities=("generate",), loader=NaiveModel.load)
def naive(image_size: int = FIELD_SIZE, tile_size: int = 10, threshold: float = 32.0,
          min_distance: int = 15) -> NaiveModel:
    """The seed's naive model: per-10×10-tile star probabilities, white circles on black."""
    return NaiveModel(**locals())
