"""Real galaxies without a download: stamps cut from the Hubble Deep Field image that ships with scikit-image.

`skimage.data.hubble_deep_field()` is a 872×1000 colour image holding a few hundred galaxies. Sources are
found by thresholding the smoothed brightness at background + k·sigma (median and MAD, robust to the
galaxies themselves), labelling connected regions and keeping those large enough and clear of the border.
Each becomes a square stamp centred on its flux-weighted centroid, four equivalent radii wide, resized
to `image_size`. The threshold is high enough (12 sigma) that most neighbouring galaxies are separate
regions. The result is a small, unlabeled set of real galaxies for autoencoders, similarity search and
sanity checks of models trained on other data; detection is deterministic and takes well under a second.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage import data, filters, measure

from core.errors import DataError
from datasets.source import ArraySource

SMOOTHING_SIGMA = 1.5       # px, Gaussian smoothing before thresholding
THRESHOLD_SIGMAS = 12.0     # detection threshold above the background, in robust noise sigmas
MIN_AREA = 50               # px above threshold for a region to count as a galaxy
MIN_STAMP_SIDE = 24         # px, smallest stamp cut from the field
STAMP_RADII = 4.0           # stamp side in equivalent radii of the detected region


def detect_sources(field: np.ndarray) -> dict[str, np.ndarray]:
    """Galaxies in an RGB uint8 `field`, brightest first: centroid x, y (px), area (px), flux, stamp side (px).

    Flux is the background-subtracted grey level summed over the region; regions touching the border are
    dropped since their centroids and sizes would be cut off.
    """
    brightness = field.astype(np.float32).mean(axis=-1)
    smoothed = filters.gaussian(brightness, sigma=SMOOTHING_SIGMA, preserve_range=True)
    background = np.median(smoothed)
    noise = 1.4826 * np.median(np.abs(smoothed - background))
    regions = measure.regionprops(measure.label(smoothed > background + THRESHOLD_SIGMAS * noise, connectivity=2),
                                  intensity_image=np.clip(brightness - background, 0, None))
    height, width = brightness.shape
    kept = [region for region in regions
            if region.area >= MIN_AREA and min(region.bbox[:2]) > 0
            and region.bbox[2] < height and region.bbox[3] < width]
    flux = np.array([region.intensity_mean * region.area for region in kept], dtype=np.float64)
    order = np.argsort(-flux, kind="stable")
    y, x = np.array([kept[i].centroid_weighted for i in order], dtype=np.float64).reshape(-1, 2).T
    area = np.array([kept[i].area for i in order], dtype=np.int64)
    side = np.maximum(MIN_STAMP_SIDE, np.round(STAMP_RADII * np.sqrt(area / np.pi))).astype(np.int64)
    return {"x": x, "y": y, "area": area, "flux": flux[order], "side": side}


def cut_stamps(field: np.ndarray, x: np.ndarray, y: np.ndarray, side: np.ndarray, image_size: int) -> np.ndarray:
    """Square `side`-px stamps of `field` centred on (x, y), reflect-padded at edges, resized to `image_size`."""
    pad = int(side.max(initial=0))
    padded = cv2.copyMakeBorder(field, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    stamps = np.empty((len(side), image_size, image_size, field.shape[-1]), dtype=np.uint8)
    for k, (centre_x, centre_y, size) in enumerate(zip(x, y, side)):
        top, left = int(round(centre_y)) - size // 2 + pad, int(round(centre_x)) - size // 2 + pad
        stamp = padded[top:top + size, left:left + size]
        stamps[k] = cv2.resize(stamp, (image_size, image_size),
                               interpolation=cv2.INTER_AREA if size >= image_size else cv2.INTER_CUBIC)
    return stamps


class Hubble(ArraySource):
    """Unlabeled galaxy stamps (n, image_size, image_size, 3) uint8 from the Hubble Deep Field, brightest first."""

    def __init__(self, image_size: int = 64):
        if image_size <= 0:
            raise DataError(f"image size must be positive, got {image_size}. Pass a size such as 64")
        field = data.hubble_deep_field()
        self.sources = detect_sources(field)
        super().__init__(cut_stamps(field, self.sources["x"], self.sources["y"], self.sources["side"], image_size),
                         name="hubble")

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Centre x, y in field pixels, detected area (px) and background-subtracted flux of each stamp."""
        indices = np.asarray(indices, dtype=np.int64)
        return {key: self.sources[key][indices] for key in ("x", "y", "area", "flux")}


def open_source(data_dir: str | None = None, image_size: int = 64, seed: int = 0) -> Hubble:
    """The Hubble Deep Field stamps; `data_dir` and `seed` are unused (the image ships with scikit-image)."""
    return Hubble(image_size)
