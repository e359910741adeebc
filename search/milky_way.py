"""The Milky Way as a query, observed the way the gallery it is searched in was observed.

A clean, deep render of our galaxy sits far from every noisy survey cut-out or heavily stretched photograph in
any embedding that has not fully learned to ignore the observation; its nearest neighbours are then the
galaxies whose *observation* resembles the render, not whose structure does. So the query is made to look like
the gallery: many observing conditions are drawn for the Milky Way (datasets/synthetic_galaxies/observe.py),
each render is described by a few image statistics (sky level, pixel noise, contrast, the galaxy's extent and
core, colourfulness), and the renders closest to the gallery's typical statistics are kept. Search then uses
the mean of their embeddings: one vector for "the Milky Way, seen like these galaxies".
"""
from __future__ import annotations

import numpy as np

from datasets.pipeline import prepare_image
from datasets.synthetic_galaxies import MAX_SIZE, MIN_SIZE, milky_way
from datasets.synthetic_galaxies.observe import draw_conditions

CANDIDATES = 96          # observing conditions tried for the Milky Way
VIEWS = 12               # the ones closest to the gallery, whose embeddings are averaged
SAMPLE = 256             # gallery images whose statistics describe it
BORDER = 6               # px: the frame's edge, mostly sky, where the pixel noise is measured
QUERY_SEED = 1915


def image_statistics(images: np.ndarray) -> np.ndarray:
    """(n, 6) statistics of prepared images in [0, 1]: sky level (10th percentile of intensity), pixel noise (median
    absolute difference of neighbouring edge pixels), contrast (99th minus 10th percentile), the share of pixels
    above 15% and above 50% of the way from sky to the 99th percentile (the galaxy's extent and its bright core:
    size in the frame, stretch and seeing all move them) and colourfulness (mean spread across channels)."""
    intensity = images.mean(axis=-1)
    flat = intensity.reshape(len(images), -1)
    sky, bright = np.percentile(flat, 10, axis=1), np.percentile(flat, 99, axis=1)
    edge = np.concatenate([intensity[:, :BORDER, :], intensity[:, -BORDER:, :]], axis=1)
    noise = np.median(np.abs(np.diff(edge, axis=2)).reshape(len(images), -1), axis=1)
    extent, core = (np.mean(flat > (sky + level * (bright - sky))[:, None], axis=1) for level in (0.15, 0.5))
    colour = images.std(axis=-1).reshape(len(images), -1).mean(axis=1)
    return np.stack([sky, noise, bright - sky, extent, core, colour], axis=1)


def render_size(image_size: int, crop: float | None = None) -> int:
    """The size to render the Milky Way at so that, after the gallery's crop, it fills the frame as a synthetic
    galaxy of `image_size` px does (within the renderer's sizes)."""
    return int(np.clip(round(image_size / (crop or 1.0)), MIN_SIZE, MAX_SIZE))


def milky_way_views(gallery_images: np.ndarray, image_size: int, crop: float | None = None,
                    views: int = VIEWS, candidates: int = CANDIDATES, seed: int = QUERY_SEED) -> np.ndarray:
    """`views` prepared renders of the Milky Way (float32, (views, S, S, C) in [0, 1]) whose image statistics are
    nearest the median of `gallery_images` (prepared, the same size), each statistic scaled by its spread."""
    size = render_size(image_size, crop)
    rng = np.random.default_rng(seed)
    renders = np.concatenate([
        prepare_image(milky_way(size, draw_conditions(rng), seed=seed + i), image_size, crop)
        for i in range(candidates)])
    channels = gallery_images.shape[-1]
    if channels == 1:
        renders = renders.mean(axis=-1, keepdims=True)
    distance = gallery_distance(renders, gallery_images)
    return renders[np.argsort(distance, kind="stable")[:views]].astype(np.float32)


def gallery_distance(images: np.ndarray, gallery_images: np.ndarray) -> np.ndarray:
    """How unlike the gallery each image looks: the distance of its statistics from the gallery's median, each
    statistic in units of its spread over the gallery (median absolute deviation)."""
    gallery = image_statistics(gallery_images)
    centre = np.median(gallery, axis=0)
    spread = np.median(np.abs(gallery - centre), axis=0) + 1e-3
    return np.linalg.norm((image_statistics(images) - centre) / spread, axis=1)
