"""Built-in synthetic galaxy images: five Galaxy10-style morphology classes rendered from a seed, no download.

The zoo must train, test and demo offline, so this module paints RGB galaxy cut-outs. Each galaxy is built from
the components astronomers fit to real ones: Sérsic bulges and ellipticals, lenticulars, inclined exponential
discs, logarithmic spiral arms (grand-design or flocculent) with star-forming knots and dust lanes, Ferrers bars
whose ends launch the arms, rings, thin edge-on discs with a dust lane, merging pairs with tidal tails and
disturbed irregulars. It is then observed under conditions drawn per image (observe.py: its size in the frame,
depth, seeing, sky, foreground stars and background galaxies, display stretch, colour balance, JPEG), so that
a model trained here has to learn the galaxy rather than one look of the sky.

Orientation, mirror image, centring offset, size, surface brightness and integrated colour are drawn from the
same distributions for every class (colour gradients inside a galaxy are kept), so a model has to learn the
spatial structure: brightness or mean colour alone barely tell classes apart.

Geometry is expressed in pixels of a 64×64 frame whatever the output size, so a galaxy looks the same
at 16 or 256 px; sizes below 48 px are rendered at a multiple and averaged down to avoid aliasing.
Image i of a dataset is rendered with `np.random.default_rng([seed, i])`, split into one stream for the galaxy
and one for its observation, so it never depends on how the dataset is read, and the same galaxy can be
observed again under other conditions (`render(..., held_out_condition=...)`). Preview:
`python -m datasets.synthetic_galaxies --preview galaxies.png` (evaluation/preview.py).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from core.errors import DataError
from datasets.source import Source
from datasets.synthetic_galaxies.morphology import (
    CENTRE_OFFSET_MAX,
    CENTRE_OFFSET_SIGMA,
    FLUX_RANGE,
    GALAXY_DRAWERS,
    REFERENCE_HALF_LIGHT,
    DiscShape,
    add_neighbours,
    add_stars,
    calibrate,
    draw_disc,
    galaxy_frame,
    pixel_grid,
    random_colour,
    render_size,
)
from datasets.synthetic_galaxies.observe import Conditions, draw_conditions, held_out, log_uniform, observe

CLASS_NAMES = ("Round Smooth", "Edge-on", "Barred Spiral", "Unbarred Spiral", "Merging")
DEFAULT_N = 5000
MIN_SIZE, MAX_SIZE = 16, 256
MILKY_WAY_SEED = 1915                # Shapley's year: fixes the knots and noise of `milky_way`

def _check_size(size: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"synthetic galaxies are rendered from {MIN_SIZE} to {MAX_SIZE} px, got --image-size {size}. "
                        f"Choose a size in that range, e.g. 64")


def galaxy_flux(half_light: float, rng: np.random.Generator) -> float:
    """A total flux in sky-noise units at depth 1; it grows with the galaxy's area, so surface brightness does not
    depend on how large the galaxy is drawn in the frame."""
    return log_uniform(rng, *FLUX_RANGE) * (half_light / REFERENCE_HALF_LIGHT) ** 2


def render(label: int, size: int, rng: np.random.Generator, held_out_condition: str | None = None) -> np.ndarray:
    """One galaxy of class `label` near the centre of a `size`×`size` RGB uint8 image, drawn from `rng`, observed
    under conditions drawn by `observe.draw_conditions`, or with one of `HELD_OUT_CONDITIONS` put in place. The
    galaxy and the observation draw from separate streams, so a held-out condition shows the same galaxy."""
    _check_size(size)
    if not 0 <= label < len(CLASS_NAMES):
        raise ValueError(f"label must be 0..{len(CLASS_NAMES) - 1}, got {label}")
    galaxy_rng, sky_rng = rng.spawn(2)
    conditions = draw_conditions(sky_rng)
    if held_out_condition is not None:
        conditions = held_out(conditions, held_out_condition)
    x, y = pixel_grid(render_size(size))
    centre = np.clip(galaxy_rng.normal(0, CENTRE_OFFSET_SIGMA, 2), -CENTRE_OFFSET_MAX, CENTRE_OFFSET_MAX)
    light = GALAXY_DRAWERS[label](x, y, centre, conditions.half_light, galaxy_rng)
    light = calibrate(light, galaxy_flux(conditions.half_light, galaxy_rng), random_colour(galaxy_rng))
    light = add_neighbours(add_stars(light, conditions, sky_rng), conditions, sky_rng)
    return observe(light, size, conditions, sky_rng)


MILKY_WAY = DiscShape(               # SBbc, lengths for a disc scale length of 2.6 kpc = 6.5 px
    scale_length=6.5, axis_ratio=0.97, bulge_fraction=0.1, bulge_radius=2.0, bulge_index=1.3,
    arm_count=2, arm_fraction=0.4, pitch_deg=13.0, arm_width=3.0, arm_start=11.0, arm_angle=math.radians(25),
    minor_arm_share=0.3, bar_fraction=0.12, bar_length=11.0, bar_axis_ratio=0.3, dust_depth=0.6, knottiness=0.5)


MILKY_WAY_HALF_LIGHT = 1.68 * MILKY_WAY.scale_length
MILKY_WAY_CONDITIONS = Conditions(half_light=MILKY_WAY_HALF_LIGHT, depth=3.0, psf_sigma=0.6, star_density=0.0,
                                  neighbours=0.0, softening=0.05, black=0.5, white=1.0)
LENGTH_FIELDS = ("scale_length", "bulge_radius", "arm_start", "bar_length", "ring_radius")


def milky_way(size: int = 64, conditions: Conditions = MILKY_WAY_CONDITIONS, seed: int = MILKY_WAY_SEED) -> np.ndarray:
    """Our galaxy seen face-on: the query image for similarity search. By default a clean, deep survey-like view;
    with other `conditions` (and `seed`, which draws its noise and field stars) it is observed like a gallery."""
    _check_size(size)
    rng = np.random.default_rng(seed)
    galaxy_rng, sky_rng = np.random.default_rng(MILKY_WAY_SEED), rng.spawn(1)[0]
    zoom = conditions.half_light / MILKY_WAY_HALF_LIGHT
    shape = dataclasses.replace(MILKY_WAY, **{name: getattr(MILKY_WAY, name) * zoom for name in LENGTH_FIELDS})
    x, y = pixel_grid(render_size(size))
    u, v = galaxy_frame(x, y, (0.0, 0.0), math.radians(-20), mirror=False)
    light = calibrate(draw_disc(u, v, shape, galaxy_rng), 15000.0 * zoom ** 2, np.array([1.08, 1.0, 0.92]))
    light = add_neighbours(add_stars(light, conditions, sky_rng), conditions, sky_rng)
    return observe(light, size, conditions, sky_rng)


class SyntheticGalaxies(Source):
    """`n` rendered galaxies of size `size`, classes balanced and shuffled by `seed`; image i depends on (seed, i)."""

    name = "synthetic-galaxies"
    class_names = CLASS_NAMES
    channels = 3

    def __init__(self, size: int = 64, n: int = DEFAULT_N, seed: int = 0):
        _check_size(size)
        if n <= 0:
            raise DataError(f"synthetic galaxies need a positive number of images, got {n}. Pass n >= 1")
        if seed < 0:
            raise DataError(f"the seed must be a non-negative integer, got {seed}. Use e.g. --seed 0")
        self.size, self.n, self.seed = size, n, seed
        self._labels = np.random.default_rng(seed).permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)

    def __len__(self) -> int:
        return self.n

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = max(0, start), min(self.n, stop)
        indices = range(start, max(start, stop))
        images = np.empty((len(indices), self.size, self.size, 3), dtype=np.uint8)
        for row, index in enumerate(indices):
            images[row] = render(int(self._labels[index]), self.size, np.random.default_rng([self.seed, index]))
        return images, self._labels[start:start + len(indices)].copy()


def open_source(data_dir: str | None = None, image_size: int = 64, seed: int = 0) -> SyntheticGalaxies:
    """The dataset `datasets.load("synthetic-galaxies")` opens; `data_dir` is ignored (nothing to read)."""
    return SyntheticGalaxies(size=image_size, seed=seed)
