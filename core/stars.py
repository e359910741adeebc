"""Star extraction from a star field (the star-field seed, III.A.3): what the naive and layered models learn from
and what the star-count metric counts.

A Gaussian filter the size of a star core scores every pixel as the centre of a patch; pixels above a threshold
that are the highest within `min_distance` (non-maximum suppression) are stars. Each star gives its patch and its
centre; the pixels outside every patch are the background.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from core.errors import DataError
from core.images import GREY_LEVELS

FILTER_SIGMA = 2.5          # px, the Gaussian that scores star centres (about a small star's core)
CENTROID_RADIUS = 6         # px, window of the intensity-weighted centre refinement
SIZE_RADIUS = 15            # px, window in which a star's half-maximum area is measured
FIELDS_PER_READ = 16         # fields read and searched at once


@dataclass(frozen=True)
class StarTable:
    """Stars of one field as columns of equal length, starting with the centres x, y (px, sub-pixel)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class FoundStars(StarTable):
    """Stars found in one field: centres, peak height above the background (grey levels) and half-maximum
    radius (px), strongest filter response first."""

    peak: np.ndarray
    radius: np.ndarray


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
    patches = np.zeros((len(stars), patch_size, patch_size), np.uint8)
    for patch, row, column in zip(patches, rows, columns):
        patch[:] = padded[row:row + patch_size, column:column + patch_size]
    return patches


def background_pixels(field: np.ndarray, stars: FoundStars, patch_size: int = 30) -> np.ndarray:
    """The field's pixels outside every star patch (1-d uint8): the background with the stars removed."""
    keep = np.ones(field.shape, bool)
    half = patch_size // 2
    for row, column in zip(np.rint(stars.y).astype(int), np.rint(stars.x).astype(int)):
        keep[max(0, row - half):row + half, max(0, column - half):column + half] = False
    return field[keep]


def stars_of_fields(source, image_size: int, threshold: float, min_distance: int,
                    description: str, verbose: int | str = "auto") -> Iterator[tuple[np.ndarray, FoundStars]]:
    """(field uint8 (H, W), its stars) for every image of a dataset source (datasets.Source), in order, with a
    progress bar (none when `verbose` is 0, as in Keras' fit).

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


def no_stars_error(fields: int, dataset: str, threshold: float) -> DataError:
    """What a star-field model says when extraction found no star to learn from."""
    return DataError(f"no stars found in the {fields} fields of '{dataset}' (threshold {threshold} grey levels). "
                     "Check the data or lower --option threshold=...")


PROFILE_RADII = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)      # where star_shapes reads a profile, × half-maximum radius


def star_shapes(field: np.ndarray, stars: FoundStars, patch_size: int = 30) -> np.ndarray:
    """(k, len(PROFILE_RADII) + 2) shape of each star of a uint8 field: its radial profile above the sky as a share
    of its peak at PROFILE_RADII times its half-maximum radius, the steepest brightness step in its patch as a
    share of its peak (near 1 for a hard edge, about 0.3 for a real soft star), and how much of the bounding box
    of its half-maximum region that region fills (π/4 for a disc, 1/2 for a diamond, 1 for a square)."""
    shapes = np.zeros((len(stars), len(PROFILE_RADII) + 2), np.float32)
    if not len(stars):
        return shapes
    level, half = background_level(field), patch_size // 2
    patches = extract_patches(field, stars, patch_size).astype(np.float32) - np.float32(level)
    offsets = np.arange(patch_size, dtype=np.float32) - half
    for k, (patch, x, y) in enumerate(zip(patches, stars.x, stars.y)):
        peak = max(float(stars.peak[k]), 1.0)
        distance = np.hypot(offsets[None, :] - (x - np.rint(x)), offsets[:, None] - (y - np.rint(y)))
        rings = np.minimum(np.rint(distance).astype(np.int64), half)
        profile = np.bincount(rings.ravel(), patch.ravel(), half + 1) / np.maximum(np.bincount(rings.ravel(), None,
                                                                                              half + 1), 1)
        radius = max(float(stars.radius[k]), 0.5)
        shapes[k, :len(PROFILE_RADII)] = np.interp(np.asarray(PROFILE_RADII) * radius, np.arange(half + 1),
                                                   profile) / peak
        rows, columns = np.gradient(patch)
        shapes[k, -2] = np.hypot(rows, columns).max() / peak
        regions, _ = ndimage.label(patch >= peak / 2)
        region = regions == regions[half, half] if regions[half, half] else regions == regions.max()
        found_rows, found_columns = np.nonzero(region)
        if len(found_rows):
            box = (np.ptp(found_rows) + 1) * (np.ptp(found_columns) + 1)
            shapes[k, -1] = len(found_rows) / box
    return shapes
