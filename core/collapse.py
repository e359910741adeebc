"""Mode-collapse statistics of a batch of generated images, and the verdict drawn from them.

A GAN that collapses makes the same image for every latent vector, or (the star-field seed's StyleGAN) only black
images. Three numbers of a batch in [0, 1] show it:
- pixel_std: the standard deviation of each pixel across the batch, averaged over pixels (0 when all are equal);
- black_fraction: the share of images whose brightest pixel is below `black_level` (real galaxies and star
  fields always have a core, a star or at least sky noise above it);
- pairwise_distance: the mean root-mean-square difference between two images of the batch (0 when all are equal).

How much spread is enough depends on the images (sparse star fields vary less per pixel than galaxies), so the
verdict compares the spread with that of a batch of real images when one is given, and with fixed floors when not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist

SPREADS = ("pixel_std", "pairwise_distance")


@dataclass(frozen=True)
class CollapseThresholds:
    """Limits past which a batch counts as collapsed (for images in [0, 1])."""

    max_black_fraction: float = 0.5
    min_spread_ratio: float = 1 / 3      # of the real images' pixel_std and pairwise_distance
    min_pixel_std: float = 0.01          # floors used when no real images are given
    min_pairwise_distance: float = 0.015
    black_level: float = 0.05


def collapse_statistics(images: np.ndarray, black_level: float = CollapseThresholds.black_level) -> dict[str, float]:
    """pixel_std, black_fraction and pairwise_distance of a batch (N, H, W, C) in [0, 1], N >= 2."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"expected a batch of at least 2 images (N, H, W, C), got shape {images.shape}")
    flat = images.reshape(len(images), -1)
    return {
        "pixel_std": float(flat.std(axis=0).mean()),
        "black_fraction": float(np.mean(flat.max(axis=1) < black_level)),
        "pairwise_distance": float(pdist(flat, "euclidean").mean() / np.sqrt(flat.shape[1])),
    }


def collapse_reasons(generated: dict[str, float], real: dict[str, float] | None = None,
                     thresholds: CollapseThresholds = CollapseThresholds(),
                     spreads: tuple[str, ...] = SPREADS) -> list[str]:
    """Why a generated batch looks collapsed, one phrase per statistic past its limit; empty when it looks varied.

    `generated` and `real` are collapse_statistics of generated and of real images; `spreads` the spread
    statistics judged (all of SPREADS by default).
    """
    reasons = []
    if generated["black_fraction"] > thresholds.max_black_fraction:
        reasons.append(f"{generated['black_fraction']:.0%} of the images are black")
    floors = {"pixel_std": thresholds.min_pixel_std, "pairwise_distance": thresholds.min_pairwise_distance}
    for name in spreads:
        if real is not None and generated[name] < thresholds.min_spread_ratio * real[name]:
            reasons.append(f"{name.replace('_', ' ')} {generated[name]:.3f} is under "
                           f"{thresholds.min_spread_ratio:.2g} of the real images' {real[name]:.3f}")
        elif real is None and generated[name] < floors[name]:
            reasons.append(f"{name.replace('_', ' ')} {generated[name]:.4f} is under {floors[name]}")
    return reasons
