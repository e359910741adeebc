"""The seed's naive statistical model (../shared/seeds/000_*.txt, III.A.2): white circles on black.

Training counts, over the real fields, how often a star's centre falls in each 10×10 px tile (normalised:
the probability that a star lies there), how many stars a field has and how large they are; stars are found
with the layered model's extraction (zoo/layered.py: filter, threshold, non-maximum suppression), their size
is the half-maximum radius. A new field draws a star count, that many tiles from the tile distribution (a
uniform point inside each) and a radius for each from the observed radii, and paints filled white circles on
a black 1000×1000 image. No Keras: numpy and OpenCV, any backend. Saved as a folder of parts: parts.json
(options) and statistics.npz (tile probabilities, count probabilities, radii).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from datasets.source import DataError, Source
from evaluation.files import image_grid
from zoo.layered import stars_of_fields
from zoo.registry import ModelError, register

SUBPIXEL_BITS = 4        # cv2.circle draws centres and radii to 1/16 px


class NaiveModel:
    """Per-tile star probabilities, a star-count distribution and the observed radii."""

    def __init__(self, *, image_size: int, tile_size: int, threshold: float, min_distance: int):
        self.options = {name: value for name, value in locals().items() if name != "self"}
        if tile_size <= 0 or image_size % tile_size:
            raise ModelError(f"naive needs a tile size that divides the image size {image_size}, got {tile_size}. "
                             "Use --option tile_size=10")
        self.image_size, self.tile_size = image_size, tile_size
        self.tiles_per_side = image_size // tile_size
        self.tile_probabilities: np.ndarray | None = None    # (tiles_per_side, tiles_per_side), sums to 1
        self.count_probabilities: np.ndarray | None = None   # P(count = k), k = 0..max seen
        self.radii: np.ndarray | None = None                 # px, every star seen

    def fit_source(self, source: Source, *, validation: Source | None = None, epochs: int = 1, batch_size: int = 32,
                   steps_per_epoch: int | None = None, seed: int = 0, log: Callable[[dict], None] = lambda row: None,
                   verbose: int | str = "auto") -> None:
        """One pass over the fields (epochs, batches and steps do not apply, nor the held-out `validation`
        fields: counts have nothing to tune); hands `log` one history row."""
        started = time.perf_counter()
        tile_counts = np.zeros((self.tiles_per_side, self.tiles_per_side), np.int64)
        star_counts, radii = [], []
        for _, stars in stars_of_fields(source, self.image_size, self.options["threshold"],
                                        self.options["min_distance"], "counting stars", verbose):
            rows = np.clip(stars.y // self.tile_size, 0, self.tiles_per_side - 1).astype(int)
            columns = np.clip(stars.x // self.tile_size, 0, self.tiles_per_side - 1).astype(int)
            np.add.at(tile_counts, (rows, columns), 1)
            star_counts.append(len(stars))
            radii.append(stars.radius)
        if tile_counts.sum() == 0:
            raise DataError(f"no stars found in the {len(star_counts)} fields of '{source.name}' (threshold "
                            f"{self.options['threshold']} grey levels). Check the data or lower --option threshold=...")
        self.tile_probabilities = tile_counts / tile_counts.sum()
        self.count_probabilities = np.bincount(star_counts) / len(star_counts)
        self.radii = np.concatenate(radii).astype(np.float32)
        log({"part": "statistics", "epoch": 0, "fields": len(star_counts), "stars": int(tile_counts.sum()),
             "seconds": time.perf_counter() - started})

    def sample_stars(self, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each of n fields: star centres (k, 2) x, y in px and radii (k,), drawn from the statistics."""
        if self.tile_probabilities is None:
            raise ModelError("the naive model is not trained yet. Train it with 'python train.py --model naive' "
                             "and load the run with zoo.load")
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

    def save(self, folder: str | Path) -> None:
        """Writes parts.json and statistics.npz into `folder` (which exists)."""
        folder = Path(folder)
        (folder / "parts.json").write_text(json.dumps({"model": "naive", "options": self.options}, indent=2) + "\n")
        np.savez(folder / "statistics.npz", tile_probabilities=self.tile_probabilities,
                 count_probabilities=self.count_probabilities, radii=self.radii)

    @classmethod
    def load(cls, folder: str | Path) -> NaiveModel:
        folder = Path(folder)
        try:
            model = cls(**json.loads((folder / "parts.json").read_text())["options"])
            with np.load(folder / "statistics.npz") as statistics:
                model.tile_probabilities = statistics["tile_probabilities"]
                model.count_probabilities = statistics["count_probabilities"]
                model.radii = statistics["radii"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{folder} is not a complete naive model ({error}). Train it again") from None
        return model


@register("naive", world="star-fields", capabilities=("generate",), loader=NaiveModel.load)
def naive(image_size: int = 1000, tile_size: int = 10, threshold: float = 32.0, min_distance: int = 15) -> NaiveModel:
    """The seed's naive model: per-10×10-tile star probabilities, white circles on black."""
    return NaiveModel(**locals())
