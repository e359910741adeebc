"""How a rendered galaxy is observed and displayed: the conditions that differ from one real photograph to the next.

A model trained on one look learns that look. Real galaxy photographs come from surveys and from amateur and
professional astrophotographers: galaxies fill a tenth or all of the frame, seeing blurs them by a fraction of a
pixel or by several, skies are noisy or smooth, flat or graded, and the picture is stretched in many ways (asinh
as surveys do, log, square root, linear with a saturated core), colour-balanced and saturated to taste, and saved
as JPEG. `draw_conditions` draws all of this per image (domain randomisation, Tobin et al. 2017), so that what a
model can rely on across its training set is the galaxy, not the camera.

`HELD_OUT_CONDITIONS` are observing conditions just outside every training range (two other stretches, worse
seeing, more noise, a crowded star field, a larger galaxy, a strong colour cast, heavy JPEG): `evaluate.py robustness`
renders the validation galaxies under each to measure what a model does on conditions it never saw.

Light is in sky-noise units of a 64 px frame (noise σ = 1 at depth 1); the output is RGB uint8.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

STRETCHES = ("asinh", "log", "sqrt", "linear")      # the display curves training draws from
HELD_OUT_STRETCHES = ("mtf", "equalise")              # curves no training image has (see `display_curve`)
MTF_MIDTONE = 0.08                                    # the midtones balance of the held-out "mtf" curve
PSF_WING_SCALE = 3.5                                  # the wings' width in units of the core's


@dataclass(frozen=True)
class Conditions:
    """One observation: sizes in px of a 64 px frame, light in sky-noise units."""

    half_light: float = 8.0          # the galaxy's half-light radius: its size in the frame
    depth: float = 1.0               # signal multiplier against fixed sky noise (exposure time, aperture)
    psf_sigma: float = 0.65          # seeing: the Gaussian core of the PSF
    psf_wings: float = 0.12          # share of light in the PSF's wide wings
    sky: float = 0.5                 # residual sky level
    gradient: float = 0.0            # sky level change across the frame (scattered moonlight, bad flats)
    gain: float = 5.0                # signal per Poisson count: smaller gives more shot noise in the galaxy
    stretch: str = "asinh"
    softening: float = 0.02          # asinh: where the curve turns from linear to logarithmic; log: 1 / its scale
    black: float = 0.0               # black point in noise units above the sky
    white: float = 1.0               # white point as a multiple of the galaxy's peak (< 1 saturates the core)
    per_channel: bool = False        # stretch each channel alone (cores wash out to white), else keep colours
    colour_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)   # colour balance
    saturation: float = 1.0          # 0 grey, 1 as observed, > 1 vivid
    star_density: float = 0.8        # mean number of foreground stars in the frame
    spikes: float = 0.0              # diffraction-spike strength of bright stars (reflecting telescopes)
    neighbours: float = 1.5          # mean number of small background galaxies in the frame
    jpeg_quality: int = 0            # 0 no JPEG, else the quality it was saved at


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw whose logarithm is uniform between log(low) and log(high): scales that span decades."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def draw_conditions(rng: np.random.Generator) -> Conditions:
    """Observing and display conditions drawn over the ranges of real survey cut-outs and astrophotographs."""
    stretch = STRETCHES[rng.choice(len(STRETCHES), p=(0.4, 0.25, 0.2, 0.15))]
    softening = {"asinh": log_uniform(rng, 0.005, 0.2), "log": log_uniform(rng, 0.001, 0.1)}.get(stretch, 0.0)
    white = {"linear": (0.04, 0.5), "sqrt": (0.1, 0.9)}.get(stretch, (0.25, 1.5))   # steeper curves saturate
    return Conditions(
        half_light=log_uniform(rng, 4.5, 20.0),
        depth=log_uniform(rng, 0.6, 25.0),
        psf_sigma=log_uniform(rng, 0.4, 2.0),
        psf_wings=rng.uniform(0.03, 0.25),
        sky=rng.uniform(-0.5, 3.0),
        gradient=rng.uniform(0, 3.0) if rng.random() < 0.3 else 0.0,
        gain=log_uniform(rng, 1.0, 20.0),
        stretch=stretch,
        softening=softening,
        black=rng.uniform(-1.5, 3.0),
        white=log_uniform(rng, *white),
        per_channel=bool(rng.random() < 0.25),
        colour_gains=tuple(float(g) for g in np.exp(rng.normal(0, 0.1, 3))),
        saturation=0.0 if rng.random() < 0.08 else rng.uniform(0.4, 1.5),
        star_density=rng.uniform(0, 3.0),
        spikes=rng.uniform(0.3, 1.0) if rng.random() < 0.3 else 0.0,
        neighbours=rng.uniform(0, 2.5),
        jpeg_quality=int(rng.integers(45, 96)) if rng.random() < 0.4 else 0,
    )


HELD_OUT_CONDITIONS: dict[str, dict] = {     # each just past the end of its training range
    "stretch": {"stretch": "mtf"},
    "equalise": {"stretch": "equalise"},
    "seeing": {"psf_sigma": 2.3, "psf_wings": 0.28},
    "noise": {"depth": 0.45},
    "stars": {"star_density": 6.0, "spikes": 1.0},
    "zoom": {"half_light": 24.0},
    "colour": {"colour_gains": (1.45, 1.0, 0.6), "saturation": 2.0},
    "jpeg": {"jpeg_quality": 25},
}


def held_out(conditions: Conditions, name: str) -> Conditions:
    """`conditions` with held-out condition `name` (a key of HELD_OUT_CONDITIONS) put in place."""
    return dataclasses.replace(conditions, **HELD_OUT_CONDITIONS[name])


def blur(light: np.ndarray, conditions: Conditions) -> np.ndarray:
    """The PSF: a Gaussian core plus wider Gaussian wings, on the render grid (`light` is render_size square)."""
    sigma = conditions.psf_sigma * light.shape[0] / 64
    core = cv2.GaussianBlur(light, (0, 0), sigma)
    return (1 - conditions.psf_wings) * core + conditions.psf_wings * cv2.GaussianBlur(light, (0, 0),
                                                                                        PSF_WING_SCALE * sigma)


def observe(light: np.ndarray, size: int, conditions: Conditions, rng: np.random.Generator) -> np.ndarray:
    """The camera and the display: depth, PSF, averaging to `size`, sky and its gradient, noise, colour balance,
    stretch, saturation and JPEG. `light` is RGB float32 on the render grid; returns RGB uint8 (size, size, 3)."""
    light = blur(light * np.float32(conditions.depth), conditions)
    if light.shape[0] != size:
        light = cv2.resize(light, (size, size), interpolation=cv2.INTER_AREA)
    peak = float(light.mean(axis=-1).max())
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    sky = conditions.sky + conditions.gradient * (math.cos(angle) * axis[None, :] + math.sin(angle) * axis[:, None])
    variance = 1 + np.clip(light, 0, None) / np.float32(conditions.gain)
    observed = light + sky[..., None] + np.sqrt(variance) * rng.standard_normal(light.shape, dtype=np.float32)
    observed *= np.asarray(conditions.colour_gains, dtype=np.float32)
    shown = stretch(observed, conditions, peak)
    grey = shown.mean(axis=-1, keepdims=True)
    shown = np.clip(grey + np.float32(conditions.saturation) * (shown - grey), 0, 1)
    image = np.round(shown * 255).astype(np.uint8)
    return jpeg(image, conditions.jpeg_quality) if conditions.jpeg_quality else image


def display_curve(level: np.ndarray, conditions: Conditions) -> np.ndarray:
    """Levels scaled so black is 0 and white is 1 through the display curve, clipped to [0, 1]. Besides the training
    curves: "mtf", the midtones transfer function of astrophotography's usual automatic screen stretch
    (PixInsight's STF), and "equalise", histogram equalisation, which spreads even the sky's noise over half the
    grey levels."""
    level = np.clip(level, 0, None)
    if conditions.stretch == "asinh":
        curve = np.arcsinh(level / conditions.softening) / math.asinh(1 / conditions.softening)
    elif conditions.stretch == "log":
        curve = np.log1p(level / conditions.softening) / math.log1p(1 / conditions.softening)
    elif conditions.stretch == "sqrt":
        curve = np.sqrt(level)
    elif conditions.stretch == "linear":
        curve = level
    elif conditions.stretch == "mtf":
        curve = (MTF_MIDTONE - 1) * level / ((2 * MTF_MIDTONE - 1) * level - MTF_MIDTONE)
    elif conditions.stretch == "equalise":
        ranks = np.argsort(np.argsort(level, axis=None), axis=None).reshape(level.shape)
        curve = np.where(level > 0, ranks / max(level.size - 1, 1), 0)
    else:
        raise ValueError(f"unknown stretch '{conditions.stretch}'")
    return np.clip(curve, 0, 1).astype(np.float32)


def stretch(observed: np.ndarray, conditions: Conditions, peak: float) -> np.ndarray:
    """RGB in [0, 1]: black at `conditions.black` noise units above zero sky, white at `conditions.white` × the
    galaxy's `peak`. Colour-preserving (Lupton et al. 2004: one curve on the mean, colours scaled along) unless
    `per_channel`."""
    black = np.float32(conditions.black)
    span = np.float32(max(conditions.white * peak - conditions.black, 1.0))
    if conditions.per_channel:
        return display_curve((observed - black) / span, conditions)
    intensity = (observed.mean(axis=-1, keepdims=True) - black) / span
    curve = display_curve(intensity, conditions)
    rgb = np.clip(observed - black, 0, None) / span * (curve / np.maximum(intensity, np.float32(1e-6)))
    return rgb / np.maximum(rgb.max(axis=-1, keepdims=True), 1)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """`image` saved as a JPEG of `quality` and decoded again: its blocks and ringing."""
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])
