"""The attack the star-field seed warns its random forest about: fields that reproduce a real field's brightness
histogram and power spectrum but whose stars have the wrong shape.

Each real field's stars (core.stars.find_stars) are painted over as flat-topped, hard-edged discs or squares of
their own brightness and a little more than their half-maximum size, on the field's own sky. The result is then
pulled back to the real field's statistics by IAAFT (iterated amplitude-adjusted Fourier transform, Schreiber and
Schmitz 1996): the real field's Fourier amplitudes with the fake's phases, then the real field's exact grey
levels in the fake's rank order. The last step is the histogram one, so the histogram is the real field's exactly
and the spectrum close to it (a spectrum distance of 0.3 to the real fields, where two real sets differ by 0.5);
one round, because each further round rounds the hard edges back towards the real profile.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from core.stars import background_level, find_stars

IAAFT_ROUNDS = 1
SIZE_FACTOR = 1.3          # shape radius over the star's half-maximum radius
SQUARE_SHARE = 0.5         # share of stars painted as squares; the rest are discs


def hard_shapes(field: np.ndarray, rng: np.random.Generator, share: float = 1.0) -> np.ndarray:
    """float32 copy of a uint8 field with each found star, or a random `share` of them, replaced by a flat disc
    or square of its peak."""
    fake = field.astype(np.float32)
    stars = find_stars(field)
    level = background_level(field)
    squares = rng.random(len(stars)) < SQUARE_SHARE
    painted = rng.random(len(stars)) < share
    for x, y, peak, radius, square in zip(*(column[painted] for column in (stars.x, stars.y, stars.peak, stars.radius,
                                                                          squares))):
        reach = SIZE_FACTOR * max(radius, 1.0)
        top, left = max(0, int(y - 2 * reach)), max(0, int(x - 2 * reach))
        window = np.s_[top:min(field.shape[0], int(y + 2 * reach) + 1),
                       left:min(field.shape[1], int(x + 2 * reach) + 1)]
        rows, columns = np.ogrid[window]
        dx, dy = np.abs(columns - x), np.abs(rows - y)
        inside = np.maximum(dx, dy) <= reach if square else np.hypot(dx, dy) <= reach
        fake[window][inside] = min(255.0, level + peak)
    return fake


def adversarial_field(field: np.ndarray, rng: np.random.Generator, share: float = 1.0) -> np.ndarray:
    """uint8 field with the grey levels of the uint8 `field`, about its power spectrum, and hard-edged stars (all,
    or a random `share` of them: the scored set's `attack` look)."""
    amplitude = np.abs(scipy.fft.rfft2(field.astype(np.float32)))
    levels = np.sort(field.ravel())
    fake = hard_shapes(field, rng, share)
    result = np.empty(field.size, np.uint8)
    for _ in range(IAAFT_ROUNDS):
        spectrum = scipy.fft.rfft2(fake)
        fake = scipy.fft.irfft2(amplitude * spectrum / np.maximum(np.abs(spectrum), 1e-6), s=field.shape)
        result[np.argsort(fake.ravel(), kind="stable")] = levels
        fake = result.reshape(field.shape).astype(np.float32)
    return result.reshape(field.shape)
