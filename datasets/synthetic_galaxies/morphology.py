"""The galaxies themselves: light profiles, discs, bars, arms, rings, edge-on discs, mergers and irregulars, and the
stars and small galaxies around them, drawn as RGB light (sky-noise units) on a render grid.

Lengths are in pixels of a 64×64 frame (REFERENCE_SIZE) whatever the render grid; `GALAXY_DRAWERS` holds one
drawer per class, in CLASS_NAMES order. How the light is then observed is observe.py's business.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import special

from datasets.synthetic_galaxies.observe import Conditions, log_uniform

REFERENCE_SIZE = 64          # all lengths are in pixels of a 64x64 frame
MIN_RENDER_SIZE = 48         # smaller outputs are rendered at a multiple of their size, then averaged down
CORE_SOFTENING = 0.5         # px, keeps cuspy profiles finite at the centre
REFERENCE_HALF_LIGHT = 8.0          # px: FLUX_RANGE is the total flux of a galaxy this size
FLUX_RANGE = (4000.0, 40000.0)      # total flux in sky-noise units at depth 1, log-uniform, every class
CENTRE_OFFSET_SIGMA, CENTRE_OFFSET_MAX = 1.5, 4.0   # px

# Relative RGB tints of the components; the galaxy's integrated colour is set separately.
BULGE_TINT = (1.25, 1.0, 0.72)       # old stars: yellow-red
DISC_TINT = (1.0, 1.0, 0.95)
ARM_TINT = (0.75, 0.95, 1.35)        # young stars and HII regions: blue
TAIL_TINT = (0.85, 0.97, 1.2)
EXTINCTION = np.array([0.7, 1.0, 1.35], dtype=np.float32)   # dust dims blue most



@dataclass(frozen=True)
class DiscShape:
    """A disc galaxy: exponential disc, Sérsic bulge, optional bar and logarithmic spiral arms (lengths in px)."""

    scale_length: float
    axis_ratio: float               # cos(inclination)
    bulge_fraction: float
    bulge_radius: float
    bulge_index: float
    arm_count: int = 0
    arm_fraction: float = 0.0       # share of the light in the arms (and their knots)
    pitch_deg: float = 15.0
    arm_width: float = 3.0          # sharpness exponent of the arm cross-section
    arm_start: float = 1.0          # radius where the arms begin (the bar ends, when barred)
    arm_angle: float = 0.0          # disc-plane angle where the first arm begins (along the bar)
    minor_arm_share: float = 0.0    # share of arm light in a second, fainter arm set between the main arms
    bar_fraction: float = 0.0
    bar_length: float = 0.0         # bar semi-major axis
    bar_axis_ratio: float = 0.3
    dust_depth: float = 0.0         # optical depth of the lanes on the inner edges of the arms
    knottiness: float = 0.5         # strength of the star-forming knots along the arms
    flocculence: float = 0.0        # 0 grand-design arms, 1 short patchy arm segments (flocculent spirals)
    ring_fraction: float = 0.0      # share of the light in a ring (inner ring round the bar, or outer ring)
    ring_radius: float = 0.0


@functools.lru_cache(maxsize=8)
def pixel_grid(render_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x right, y down) in reference px, centred on the frame, read-only."""
    axis = (np.arange(render_size, dtype=np.float32) + 0.5 - render_size / 2) * (REFERENCE_SIZE / render_size)
    x, y = np.meshgrid(axis, axis)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def render_size(size: int) -> int:
    """The working resolution: `size`, or the smallest multiple of it of at least MIN_RENDER_SIZE."""
    return size * math.ceil(MIN_RENDER_SIZE / size)


def galaxy_frame(x: np.ndarray, y: np.ndarray, centre: Sequence[float], angle: float,
                  mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a galaxy's own frame: u along its major axis, v across it (mirrored if asked)."""
    cos_a, sin_a = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    dx, dy = x - np.float32(centre[0]), y - np.float32(centre[1])
    u = cos_a * dx + sin_a * dy
    v = cos_a * dy - sin_a * dx
    return u, (-v if mirror else v)


def _random_frame(x: np.ndarray, y: np.ndarray, centre: Sequence[float],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A galaxy frame at any position angle, mirrored half the time (spiral arms wind either way)."""
    return galaxy_frame(x, y, centre, rng.uniform(0, 2 * math.pi), bool(rng.random() < 0.5))


def _elliptical_radius(u: np.ndarray, v: np.ndarray, axis_ratio: float) -> np.ndarray:
    return np.sqrt(u * u + (v / np.float32(axis_ratio)) ** 2 + np.float32(CORE_SOFTENING ** 2))


def _sersic(radius: np.ndarray, half_light: float, index: float) -> np.ndarray:
    """Sérsic profile exp(-b_n((r/r_e)^(1/n) - 1)); b_n from the Ciotti & Bertin expansion."""
    b = 2 * index - 1 / 3 + 4 / (405 * index) + 46 / (25515 * index ** 2)
    return np.exp(np.float32(-b) * ((radius / np.float32(half_light)) ** np.float32(1 / index) - 1))


def _sech_squared(z: np.ndarray) -> np.ndarray:
    """sech²(z), the vertical light profile of a self-gravitating disc, without overflow far from the plane."""
    decay = np.exp(-2 * np.abs(z))
    return 4 * decay / (1 + decay) ** 2


def _tint(base: Sequence[float], rng: np.random.Generator, jitter: float = 0.06) -> np.ndarray:
    """A component colour: `base` with a small random change per channel."""
    return (np.asarray(base) * np.exp(rng.normal(0, jitter, 3))).astype(np.float32)


def _compose(parts: Sequence[tuple[np.ndarray, float, np.ndarray]]) -> np.ndarray:
    """Sum of (map, flux fraction, tint) components as an RGB image; each map is normalised to unit flux."""
    light = np.zeros((*parts[0][0].shape, 3), dtype=np.float32)
    for brightness, fraction, tint in parts:
        total = float(brightness.sum())
        if fraction > 0 and total > 0:
            light += brightness[..., None] * (np.float32(fraction / total) * tint)
    return light


def _smooth_noise(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field with correlation length `sigma_px` (render px), zero mean, unit std."""
    field = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigma_px)
    return (field - field.mean()) / (field.std() + np.float32(1e-6))


def _splat(points_x: np.ndarray, points_y: np.ndarray, weights: np.ndarray, render_size: int) -> np.ndarray:
    """Point weights (positions in reference px) deposited on the render grid with bilinear interpolation."""
    scale = REFERENCE_SIZE / render_size
    px = points_x / scale + render_size / 2 - 0.5
    py = points_y / scale + render_size / 2 - 0.5
    left, top = np.floor(px), np.floor(py)
    fx, fy = px - left, py - top
    canvas = np.zeros(render_size * render_size, dtype=np.float64)
    for dx, dy, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        col, row = (left + dx).astype(np.int64), (top + dy).astype(np.int64)
        inside = (col >= 0) & (col < render_size) & (row >= 0) & (row < render_size)
        canvas += np.bincount(row[inside] * render_size + col[inside], weights=(weights * share)[inside],
                              minlength=render_size * render_size)
    return canvas.reshape(render_size, render_size).astype(np.float32)


def draw_disc(u: np.ndarray, v: np.ndarray, shape: DiscShape, rng: np.random.Generator) -> np.ndarray:
    """A disc galaxy in its own frame: disc, bulge, bar, knotty spiral arms and their dust lanes."""
    h = np.float32(shape.scale_length)
    q = shape.axis_ratio
    thick_q = math.sqrt(q * q + 0.15 ** 2 * (1 - q * q))          # discs have some thickness
    disc_u, disc_v = u, v / np.float32(q)                            # coordinates in the disc plane
    radius = np.sqrt(disc_u * disc_u + disc_v * disc_v + np.float32(CORE_SOFTENING ** 2))
    smooth_disc = np.exp(-_elliptical_radius(u, v, thick_q) / h)
    bulge = _sersic(_elliptical_radius(u, v, max(q, 0.75)), shape.bulge_radius, shape.bulge_index)
    parts = [(bulge, shape.bulge_fraction, _tint(BULGE_TINT, rng))]
    render_size = u.shape[0]
    attenuation = None
    if shape.bar_fraction > 0:
        cos_b, sin_b = np.float32(math.cos(shape.arm_angle)), np.float32(math.sin(shape.arm_angle))
        along = np.abs(cos_b * disc_u + sin_b * disc_v) / np.float32(shape.bar_length)
        across = np.abs(cos_b * disc_v - sin_b * disc_u) / np.float32(shape.bar_length * shape.bar_axis_ratio)
        bar_radius_sq = (along ** 3 + across ** 3) ** np.float32(2 / 3)   # boxy ellipse, exponent 3
        bar = np.clip(1 - bar_radius_sq, 0, None) ** 2                    # Ferrers profile
        parts.append((bar, shape.bar_fraction, _tint(BULGE_TINT, rng)))
    if shape.arm_count:
        theta = np.arctan2(disc_v, disc_u)
        winding = np.log(radius / np.float32(shape.arm_start)) / np.float32(math.tan(math.radians(shape.pitch_deg)))
        phase = shape.arm_count * (theta - np.float32(shape.arm_angle) - winding)
        onset = 1 - np.exp(-(radius / np.float32(shape.arm_start)) ** 3)   # arms grow out of the bar ends
        cross_section = ((1 + np.cos(phase)) / 2) ** np.float32(shape.arm_width)
        if shape.minor_arm_share > 0:
            minor = ((1 - np.cos(phase)) / 2) ** np.float32(shape.arm_width * 1.5)
            cross_section = (1 - shape.minor_arm_share) * cross_section + shape.minor_arm_share * minor
        knots = np.exp(np.float32(shape.knottiness) * _smooth_noise(radius.shape, 0.6 * render_size / 64, rng))
        wobble = 1 + 0.35 * _smooth_noise(radius.shape, 3.0 * render_size / 64, rng)
        if shape.flocculence > 0:       # arm segments broken up by patches a few px across
            patches = _smooth_noise(radius.shape, max(1.2, 0.15 * h) * render_size / 64, rng)
            wobble *= np.exp(np.float32(2.5 * shape.flocculence) * patches)
        arms = cross_section * onset * np.exp(-radius / (1.3 * h)) * knots * np.clip(wobble, 0.2, None)
        parts.append((arms, shape.arm_fraction, _tint(ARM_TINT, rng)))
        if shape.dust_depth > 0:
            lane = ((1 + np.cos(phase - np.float32(0.6))) / 2) ** np.float32(2 * shape.arm_width)
            depth = np.float32(shape.dust_depth) * lane * onset * np.exp(-radius / (2 * h))
            attenuation = np.exp(-depth[..., None] * EXTINCTION)
    if shape.ring_fraction > 0:
        ring = np.exp(-((radius - np.float32(shape.ring_radius)) / np.float32(0.12 * shape.ring_radius + 0.5)) ** 2)
        ring *= np.exp(0.5 * _smooth_noise(radius.shape, 0.8 * render_size / 64, rng))
        parts.append((ring, shape.ring_fraction, _tint(ARM_TINT, rng)))
    disc_fraction = 1 - shape.bulge_fraction - shape.bar_fraction - shape.arm_fraction - shape.ring_fraction
    parts.append((smooth_disc, disc_fraction, _tint(DISC_TINT, rng)))
    light = _compose(parts)
    return light if attenuation is None else light * attenuation


def _random_disc(half_light: float, barred: bool, rng: np.random.Generator) -> DiscShape:
    """Disc parameters of a barred or unbarred spiral, seen from face-on to about 65 degrees: grand-design or
    flocculent arms, tight or open, strong or weak bars, sometimes a ring (inner round the bar, or outer)."""
    bulge_fraction = rng.uniform(0.03, 0.25) if barred else rng.uniform(0.03, 0.4)
    scale_length = half_light / 1.68 * (1 + 0.6 * bulge_fraction)
    bar_length = scale_length * rng.uniform(1.0, 2.3) if barred else 0.0
    flocculent = not barred and rng.random() < 0.35
    ring_radius = bar_length * rng.uniform(1.0, 1.15) if barred else scale_length * rng.uniform(2.0, 3.2)
    return DiscShape(
        scale_length=scale_length,
        axis_ratio=math.cos(math.radians(rng.uniform(0, 65))),
        bulge_fraction=bulge_fraction,
        bulge_radius=scale_length * rng.uniform(0.25, 0.5),
        bulge_index=rng.uniform(1.0, 3.5),
        arm_count=int(rng.choice([2, 2, 2, 2, 3])) if barred else int(rng.choice([2, 2, 3, 4, 5] if flocculent
                                                                                 else [2, 2, 2, 3, 4])),
        arm_fraction=rng.uniform(0.25, 0.55),
        pitch_deg=rng.uniform(9, 32),
        arm_width=rng.uniform(1.5, 3.0) if flocculent else rng.uniform(2.0, 5.0),
        arm_start=bar_length if barred else scale_length * rng.uniform(0.35, 0.7),
        arm_angle=rng.uniform(0, 2 * math.pi),
        minor_arm_share=rng.uniform(0, 0.3) if rng.random() < 0.4 else 0.0,
        bar_fraction=rng.uniform(0.1, 0.35) if barred else 0.0,
        bar_length=bar_length,
        bar_axis_ratio=rng.uniform(0.18, 0.35),
        dust_depth=rng.uniform(0, 1.5),
        knottiness=rng.uniform(0.3, 1.1),
        flocculence=rng.uniform(0.5, 1.0) if flocculent else 0.0,
        ring_fraction=rng.uniform(0.05, 0.18) if rng.random() < 0.25 else 0.0,
        ring_radius=ring_radius,
    )


def _draw_round_smooth(x, y, centre, half_light, rng) -> np.ndarray:
    """An elliptical (a smooth, nearly round Sérsic profile, n from 1.5 to 5, with a redder core) or, one time in
    four, a lenticular seen near face-on: a big bulge in a smooth disc without arms."""
    u, v = _random_frame(x, y, centre, rng)
    if rng.random() < 0.25:
        scale_length = half_light / 1.68 * rng.uniform(1.0, 1.4)
        return draw_disc(u, v, DiscShape(
            scale_length=scale_length, axis_ratio=math.cos(math.radians(rng.uniform(0, 45))),
            bulge_fraction=rng.uniform(0.3, 0.6), bulge_radius=scale_length * rng.uniform(0.3, 0.6),
            bulge_index=rng.uniform(2.0, 4.0)), rng)
    index = rng.uniform(1.5, 5.0)
    radius = _elliptical_radius(u, v, rng.uniform(0.6, 1.0))
    return _compose([(_sersic(radius, half_light, index), 0.8, _tint(DISC_TINT, rng)),
                     (_sersic(radius, 0.35 * half_light, index), 0.2, _tint(BULGE_TINT, rng))])


def _draw_edge_on(x, y, centre, half_light, rng) -> np.ndarray:
    """A disc seen edge-on: thin and thick sech² discs, an optional bulge, often a dust lane."""
    u, v = _random_frame(x, y, centre, rng)
    h = half_light / 1.68
    scale_height = h * rng.uniform(0.06, 0.14)
    radial = np.abs(u) / np.float32(h) + np.float32(1e-3)
    along = radial * special.k1e(radial) * np.exp(-radial)              # exponential disc seen through
    along *= special.expit((np.float32(rng.uniform(3.5, 5.0)) - radial) * 4)   # disc truncation
    warp = np.float32(rng.normal(0, 0.04) * scale_height) * radial ** 2 * np.sign(u)
    height = v - warp
    thin = along * _sech_squared(height / np.float32(scale_height))
    thick = along ** np.float32(0.8) * _sech_squared(height / np.float32(2.5 * scale_height))
    bulge_fraction = rng.uniform(0.0, 0.35) if rng.random() < 0.6 else 0.0
    bulge_radius = _elliptical_radius(u, v, rng.uniform(0.55, 0.9))
    light = _compose([(thin, (1 - bulge_fraction) * 0.8, _tint(DISC_TINT, rng)),
                      (thick, (1 - bulge_fraction) * 0.2, _tint(DISC_TINT, rng)),
                      (_sersic(bulge_radius, h * rng.uniform(0.3, 0.6), rng.uniform(1, 3)), bulge_fraction,
                       _tint(BULGE_TINT, rng))])
    if rng.random() < 0.7:
        offset, width = rng.uniform(-0.6, 0.6) * scale_height, rng.uniform(0.4, 0.8) * scale_height
        lane = np.exp(-((height - np.float32(offset)) / np.float32(width)) ** 2) * np.exp(-radial / 2.5)
        light *= np.exp(-np.float32(rng.uniform(0.5, 2.5)) * lane[..., None] * EXTINCTION)
    return light


def _draw_spiral(x, y, centre, half_light, rng, barred: bool) -> np.ndarray:
    u, v = _random_frame(x, y, centre, rng)
    return draw_disc(u, v, _random_disc(half_light, barred, rng), rng)


def _draw_barred_spiral(x, y, centre, half_light, rng) -> np.ndarray:
    """A spiral with a bar; two arms start at the bar ends."""
    return _draw_spiral(x, y, centre, half_light, rng, barred=True)


def _draw_unbarred_spiral(x, y, centre, half_light, rng) -> np.ndarray:
    """A spiral with 2-4 arms starting around the bulge."""
    return _draw_spiral(x, y, centre, half_light, rng, barred=False)


def _tidal_warp(x, y, member, companion, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates bent and stretched towards `companion`, so the member's isophotes look tidally pulled."""
    axis = np.subtract(companion, member) / (np.hypot(*np.subtract(companion, member)) + 1e-6)
    along = (x - np.float32(member[0])) * np.float32(axis[0]) + (y - np.float32(member[1])) * np.float32(axis[1])
    across = (y - np.float32(member[1])) * np.float32(axis[0]) - (x - np.float32(member[0])) * np.float32(axis[1])
    along = along / np.float32(1 + strength)
    across = across + np.float32(strength * 0.08) * along * np.abs(along) / np.float32(4)
    return (np.float32(member[0]) + along * np.float32(axis[0]) - across * np.float32(axis[1]),
            np.float32(member[1]) + along * np.float32(axis[1]) + across * np.float32(axis[0]))


def _tidal_tail(centre, start_angle: float, start_radius: float, length: float, curl: float, width: float,
                render_size: int, rng: np.random.Generator, points: int = 700) -> np.ndarray:
    """A faint curved tail of stars flung out of an interacting galaxy, fading and widening outwards."""
    t = rng.random(points)
    angle = start_angle + curl * t
    radius = start_radius + length * t
    spread = width * (0.4 + t)
    tail_x = centre[0] + radius * np.cos(angle) + rng.normal(0, 1, points) * spread
    tail_y = centre[1] + radius * np.sin(angle) + rng.normal(0, 1, points) * spread
    tail = _splat(tail_x, tail_y, np.exp(-2.0 * t), render_size)
    return cv2.GaussianBlur(tail, (0, 0), 0.8 * render_size / REFERENCE_SIZE)


def _draw_irregular(x, y, centre, half_light, rng) -> np.ndarray:
    """An irregular galaxy: a lopsided, lumpy low-surface-brightness body strewn with blue star-forming clumps."""
    render_size = x.shape[0]
    u, v = _random_frame(x, y, centre, rng)
    h = half_light / 1.68
    lumps = np.exp(0.8 * _smooth_noise(x.shape, 0.3 * h * render_size / REFERENCE_SIZE, rng))
    shift = rng.normal(0, 0.4 * h, 2).astype(np.float32)
    body = np.exp(-_elliptical_radius(u - shift[0], v - shift[1], rng.uniform(0.4, 0.9)) / np.float32(h)) * lumps
    count = int(rng.integers(4, 14))
    clumps = _splat(np.float32(centre[0]) + rng.normal(0, 1.1 * h, count),
                    np.float32(centre[1]) + rng.normal(0, 1.1 * h, count), rng.exponential(1.0, count), render_size)
    clumps = cv2.GaussianBlur(clumps, (0, 0), rng.uniform(0.5, 1.2) * render_size / REFERENCE_SIZE)
    return _compose([(body, 0.7, _tint(DISC_TINT, rng)), (clumps, 0.3, _tint(ARM_TINT, rng))])


def _draw_merging(x, y, centre, half_light, rng) -> np.ndarray:
    """Two overlapping galaxies of any type, tidally distorted, with tails curling round the pair; one time in
    five a single disturbed irregular galaxy instead (the class stands for Galaxy10's disturbed and merging)."""
    if rng.random() < 0.2:
        return _draw_irregular(x, y, centre, half_light, rng)
    render_size = x.shape[0]
    second_share = rng.uniform(0.25, 0.5)
    sizes = half_light * rng.uniform(0.55, 0.8), half_light * rng.uniform(0.5, 0.75)
    separation = (sizes[0] + sizes[1]) * rng.uniform(0.6, 1.4)
    direction = rng.uniform(0, 2 * math.pi)
    axis = np.array([math.cos(direction), math.sin(direction)])
    members = (np.asarray(centre) + axis * separation * second_share,
               np.asarray(centre) - axis * separation * (1 - second_share))
    drawers = (_draw_round_smooth, _draw_edge_on, _draw_barred_spiral, _draw_unbarred_spiral)
    strength = rng.uniform(0.1, 0.6)
    light = np.zeros((render_size, render_size, 3), dtype=np.float32)
    for k, share in enumerate((1 - second_share, second_share)):
        warped_x, warped_y = _tidal_warp(x, y, members[k], members[1 - k], strength)
        drawer = drawers[rng.choice(4, p=(0.3, 0.2, 0.15, 0.35))]
        member = drawer(warped_x, warped_y, members[k], sizes[k], rng)
        light += member * np.float32(share / member.mean(axis=-1).sum())
    curl = rng.choice([-1, 1]) * rng.uniform(1.0, 2.5)
    for k in range(2 if rng.random() < 0.7 else 1):
        outward = math.atan2(*(members[k] - centre)[::-1]) if separation > 0 else direction
        tail = _tidal_tail(centre, outward, np.hypot(*(members[k] - centre)) + 0.6 * sizes[k],
                           sizes[k] * rng.uniform(1.5, 3.5), curl, sizes[k] * rng.uniform(0.12, 0.3), render_size, rng)
        light += _compose([(tail, rng.uniform(0.05, 0.15), _tint(TAIL_TINT, rng))])
    return light


GALAXY_DRAWERS: tuple[Callable[..., np.ndarray], ...] = (
    _draw_round_smooth, _draw_edge_on, _draw_barred_spiral, _draw_unbarred_spiral, _draw_merging)


def calibrate(light: np.ndarray, flux: float, colour: np.ndarray) -> np.ndarray:
    """`light` rescaled per channel to a total flux `flux` (mean over channels) and integrated colour `colour`."""
    pixel_area = (REFERENCE_SIZE / light.shape[0]) ** 2
    channel_totals = light.sum(axis=(0, 1), dtype=np.float64) * pixel_area
    return light * (flux * colour / np.maximum(channel_totals, 1e-12)).astype(np.float32)


def random_colour(rng: np.random.Generator, redness_mean: float = 0.2, redness_std: float = 0.22) -> np.ndarray:
    """An integrated colour (R, G, B with mean 1), blue-white to orange; for galaxies the same for every class."""
    redness = rng.normal(redness_mean, redness_std)
    colour = np.exp(np.array([0.5, 0.0, -0.5]) * redness + rng.normal(0, 0.04, 3))
    return colour / colour.mean()


def add_stars(light: np.ndarray, conditions: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Foreground stars as point sources (before the PSF); bright ones get diffraction spikes when the conditions
    have them, all at the telescope's one orientation."""
    render_size = light.shape[0]
    pixel_area = (REFERENCE_SIZE / render_size) ** 2
    spike_angle = rng.uniform(0, math.pi / 2)
    for _ in range(rng.poisson(conditions.star_density)):
        position = rng.uniform(-31, 31, 2)
        flux = log_uniform(rng, 20, 5000)
        xs, ys, weights = [np.array([position[0]])], [np.array([position[1]])], [np.ones(1)]
        if conditions.spikes > 0 and flux > 1000:
            length = 2.0 * math.sqrt(flux / 1000) * conditions.spikes
            along = np.linspace(-length, length, 80)
            for angle in (spike_angle, spike_angle + math.pi / 2):
                xs.append(position[0] + along * math.cos(angle))
                ys.append(position[1] + along * math.sin(angle))
                weights.append(0.002 * np.exp(-3 * np.abs(along) / length))
        star = _splat(np.concatenate(xs), np.concatenate(ys), np.concatenate(weights), render_size)
        light += star[..., None] * (np.float32(flux / pixel_area) * random_colour(rng, 0.1, 0.4))
    return light


def add_neighbours(light: np.ndarray, conditions: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Small, faint background galaxies scattered over the frame."""
    x, y = pixel_grid(light.shape[0])
    for _ in range(rng.poisson(conditions.neighbours)):
        position = rng.uniform(-30, 30, 2)
        u, v = _random_frame(x, y, position, rng)
        blob = _sersic(_elliptical_radius(u, v, rng.uniform(0.3, 1.0)), rng.uniform(0.6, 2.5), rng.uniform(0.7, 2.5))
        tint = _tint(BULGE_TINT if rng.random() < 0.6 else DISC_TINT, rng, jitter=0.12)
        light += calibrate(blob[..., None] * tint, log_uniform(rng, 20, 400), tint / tint.mean())
    return light
