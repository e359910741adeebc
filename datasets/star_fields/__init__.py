"""Built-in star fields: 1000×1000 grayscale "cosmology" images like the ETH CIL data, rendered from a seed.

The star-field models must train, test and demo offline, so this module paints what the seed paper
(docs/background.md, section III.A) describes: a dark background whose values rarely pass 30,
with real texture (a sky level that varies smoothly across the field, grain mottled on a 4 px scale and
hundreds of faint specks), and 5-25 stars of 10-20 px diameter, round or diamond-shaped, each with a
faint halo and its own brightness (the brightest saturate at 255). Star centres follow one fixed,
non-uniform density (a band across the field over a uniform floor, like a galactic plane) and keep
MIN_SEPARATION apart, so the 30×30 patch around a star holds that star alone.

It also writes the full CIL layout (`python -m datasets.star_fields --write DIR --n 100`), so scorers
can be trained and checked without the course data: `labeled/` real fields (Actual 1) and fakes
(Actual 0), `scored/` fields with a similarity score 0-8, `query/` fields without one. Fakes and scored
fields are real fields with distortions of normalised severity s_k >= 0 (0 = real). The mild ones of
real data:

    background    sky level and grain × 2^s             (distorted background)
    count         4·s stars below 5 or above 25         (wrong star count)
    blur          stars blurred with σ = 2·s px         (blurred stars)
    boxy          a share min(1, s/2) of square stars   (boxy stars)
    noise         Gaussian noise of σ = 8·s grey levels (noise)

and, from scored-set version 2 on, what generators get wrong (FAKE_LOOKS):

    flat          sky texture × (1 - a), a = min(1, s/2), towards a flat level (0 to the sky's own)
    hard          star cores with edges 1 + 3·s times steeper, halo × (1 - a): hard-edged discs and squares
    blocky        the field shrunk by 2^(1+s) and enlarged by repeating pixels (blocky upsampling)
    smooth        the whole field blurred with σ = 1.5·s px (over-smoothing)
    fog           a grey pedestal of 12·s grey levels
    size          star diameters × 2^(±0.75·s) (smaller with `fewer`)
    seams         4×4 tiles whose sky differs by a factor 2^N(0, 0.35·s) (tiles stitched with seams)
    attack        a share min(1, s/2) of the stars painted as flat discs or squares, then the field's own histogram
                  and power spectrum put back (adversarial.py: the attack on histogram-and-spectrum judges)

The score is 8·exp(-|s|), |s| the Euclidean norm of the severities: 8 for a real field, 2.9 for a
doubled background, 1.9 for two such distortions. Image i of a set depends only on (seed, set, i) and,
for the scored set, its version (SCORED_VERSIONS; version 1 is the set before FAKE_LOOKS, field for field).
One field takes about 25 ms to render (vectorised numpy and OpenCV).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError
from core.files import write_atomic
from core.stars import StarTable
from core.worlds import FIELD_SIZE
from datasets.source import Source
from datasets.star_fields.adversarial import adversarial_field

DEFAULT_N = 1000                     # fields in the `star-fields` dataset
STAR_COUNT_RANGE = (5, 25)           # stars per real field: 5 + Binomial(20, COUNT_P), mean 12
COUNT_P = 0.35
DIAMETER_RANGE = (10.0, 20.0)        # px, core diameter, uniform
DIAMOND_SHARE = 0.35                 # share of diamond-shaped stars; the rest are round
PEAK_RANGE = (70.0, 420.0)           # core brightness before clipping to 255, log-uniform: bright ones saturate
HALO_RANGE = (0.08, 0.3)             # halo amplitude as a share of the core brightness
MIN_SEPARATION = 32.0                # px between star centres
EDGE_MARGIN = 16                     # px from a centre to the field edge: its 30 px patch stays inside
STAMP_RADIUS = 15                    # px, a star is drawn on a (2·15+1)² stamp around its centre

# Star-position density: a Gaussian band through BAND_POINT at BAND_ANGLE over a uniform floor.
BAND_POINT, BAND_ANGLE, BAND_WIDTH, BAND_FLOOR = (500.0, 380.0), math.radians(28), 140.0, 0.35

# Background in grey levels: sky level × (exponential grain, mottled) + faint specks.
SKY_RANGE = (2.0, 5.0)               # mean background level of a field, uniform
SKY_VARIATION = 0.35                 # relative amplitude of the smooth large-scale level changes
MOTTLE = 0.45                        # relative amplitude of the 4 px mottling of the grain
SPECK_COUNT_RANGE = (200, 600)
SPECK_PEAK_RANGE = (8.0, 30.0)

SETS = ("fields", "labeled", "scored", "query")     # random streams: image i of set s uses rng([seed, s, i])
DISTORTIONS = ("background", "count", "blur", "boxy", "noise")
FAKE_LOOKS = ("flat", "hard", "blocky", "smooth", "fog", "size", "seams", "attack")
SCORED_VERSIONS = {1: DISTORTIONS, 2: DISTORTIONS + FAKE_LOOKS}    # what each version of the scored set draws from
SCORED_VERSION = 2                   # the version the built-in scored set and --write use
SEAM_TILES = 4                       # tiles per side of a `seams` field


@dataclass(frozen=True)
class Distortion:
    """How far a field departs from the real ones: a normalised severity per distortion, all 0 when real.

    `fewer` sends a `count` distortion below 5 stars instead of above 25, and a `size` one to smaller stars.
    """

    background: float = 0.0
    count: float = 0.0
    blur: float = 0.0
    boxy: float = 0.0
    noise: float = 0.0
    flat: float = 0.0
    hard: float = 0.0
    blocky: float = 0.0
    smooth: float = 0.0
    fog: float = 0.0
    size: float = 0.0
    seams: float = 0.0
    attack: float = 0.0
    fewer: bool = False

    @property
    def score(self) -> float:
        """Similarity to the real fields, 8·exp(-|s|): 8 when real, towards 0 as distortions grow."""
        return float(8.0 * math.exp(-math.hypot(*(getattr(self, name) for name in DISTORTIONS + FAKE_LOOKS))))


@dataclass(frozen=True)
class Stars(StarTable):
    """The stars drawn on a field: centres, core diameter (px), peak (grey levels before clipping), halo share,
    and shape (0 round, 1 diamond, 2 square)."""

    diameter: np.ndarray
    peak: np.ndarray
    halo: np.ndarray
    shape: np.ndarray


def star_density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Relative density of star centres at (x, y) px, at most 1; the same for every field."""
    across = (x - BAND_POINT[0]) * math.sin(BAND_ANGLE) - (y - BAND_POINT[1]) * math.cos(BAND_ANGLE)
    return (BAND_FLOOR + np.exp(-0.5 * (across / BAND_WIDTH) ** 2)) / (1 + BAND_FLOOR)


def _star_count(distortion: Distortion, rng: np.random.Generator) -> int:
    low, high = STAR_COUNT_RANGE
    count = low + int(rng.binomial(high - low, COUNT_P))
    if distortion.count > 0:
        excess = round(4 * distortion.count)
        count = max(0, low - excess) if distortion.fewer else high + excess
    return count


def _star_positions(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` centres drawn from `star_density` by rejection, MIN_SEPARATION apart (dart throwing)."""
    separation = MIN_SEPARATION if count <= 60 else MIN_SEPARATION / 2     # crowded fakes still fit
    chosen: list[np.ndarray] = []
    while len(chosen) < count:
        proposals = rng.uniform(EDGE_MARGIN, FIELD_SIZE - 1 - EDGE_MARGIN, (4 * count + 16, 2))
        proposals = proposals[rng.random(len(proposals)) < star_density(proposals[:, 0], proposals[:, 1])]
        for point in proposals:
            if len(chosen) == count:
                break
            if not chosen or np.hypot(*(np.asarray(chosen) - point).T).min() >= separation:
                chosen.append(point)
    centres = np.asarray(chosen, dtype=np.float64).reshape(-1, 2)
    return centres[:, 0], centres[:, 1]


def draw_stars(canvas: np.ndarray, stars: Stars, hardness: float = 0.0) -> None:
    """Adds each star to `canvas` (float32, in place): a soft-edged core that falls to a tenth of its peak
    at the rim (flat-topped once clipped, like a saturated detector) and a Gaussian halo that fades within
    the star's 30 px patch. Round stars use the Euclidean radius, diamonds |dx|+|dy|, squares max(|dx|, |dy|).
    `hardness` (the `hard` severity) steepens the rim 1 + 3·hardness times and fades the halo: hard-edged shapes."""
    reach = max(STAMP_RADIUS, int(np.ceil(0.75 * stars.diameter.max(initial=0))))     # room for enlarged stars
    padded = np.zeros((canvas.shape[0] + 2 * reach, canvas.shape[1] + 2 * reach), np.float32)
    offsets = np.arange(-reach, reach + 1, dtype=np.float32)
    left, top = np.floor(stars.x).astype(int), np.floor(stars.y).astype(int)
    dx = offsets[None, None, :] + (left - stars.x).astype(np.float32)[:, None, None]
    dy = offsets[None, :, None] + (top - stars.y).astype(np.float32)[:, None, None]
    euclidean = np.hypot(dx, dy)
    shape = stars.shape[:, None, None]
    radius = np.where(shape == 0, euclidean,
                      np.where(shape == 1, np.abs(dx) + np.abs(dy), np.maximum(np.abs(dx), np.abs(dy))))
    rim = (stars.diameter / 2).astype(np.float32)[:, None, None]
    core = np.exp(np.float32(-math.log(10)) * (radius / rim) ** np.float32(4 * (1 + 3 * hardness)))
    halo = stars.halo.astype(np.float32)[:, None, None] * np.exp(-0.5 * (euclidean / (0.45 * rim + 1.5)) ** 2)
    if hardness > 0:
        halo *= np.float32(max(0.0, 1 - hardness / 2))
    stamps = stars.peak.astype(np.float32)[:, None, None] * (core + halo)
    for stamp, x0, y0 in zip(stamps, left, top):
        padded[y0:y0 + stamp.shape[0], x0:x0 + stamp.shape[1]] += stamp
    canvas += padded[reach:reach + canvas.shape[0], reach:reach + canvas.shape[1]]


def _random_stars(distortion: Distortion, rng: np.random.Generator) -> Stars:
    x, y = _star_positions(_star_count(distortion, rng), rng)
    count = len(x)
    shape = (rng.random(count) < DIAMOND_SHARE).astype(np.int64)
    shape[rng.random(count) < min(1.0, distortion.boxy / 2)] = 2
    scale = 2.0 ** ((-0.75 if distortion.fewer else 0.75) * distortion.size)
    return Stars(x=x, y=y, diameter=scale * rng.uniform(*DIAMETER_RANGE, count),
                 peak=np.exp(rng.uniform(*np.log(PEAK_RANGE), count)), halo=rng.uniform(*HALO_RANGE, count),
                 shape=shape)


def _smooth_noise(cells: int, rng: np.random.Generator) -> np.ndarray:
    """Standard-normal noise on a cells×cells grid, interpolated smoothly up to the field size."""
    return cv2.resize(rng.standard_normal((cells, cells), dtype=np.float32), (FIELD_SIZE, FIELD_SIZE),
                      interpolation=cv2.INTER_CUBIC)


def _background(distortion: Distortion, rng: np.random.Generator) -> np.ndarray:
    """The dark sky: a smoothly varying level times exponential grain mottled on a 4 px scale, plus faint
    specks (distant sources a pixel or two wide). Mostly below 30, never flat unless `distortion.flat`;
    `seams` and `fog` change it after it is drawn."""
    gain = 2.0 ** distortion.background
    level = np.float32(gain * rng.uniform(*SKY_RANGE)) * np.clip(1 + SKY_VARIATION * _smooth_noise(5, rng), 0.2, None)
    mottle = np.clip(1 + MOTTLE * _smooth_noise(FIELD_SIZE // 4, rng), 0, None)
    sky = level * mottle * rng.standard_exponential((FIELD_SIZE, FIELD_SIZE), dtype=np.float32)
    specks = np.zeros((FIELD_SIZE, FIELD_SIZE), np.float32)
    count = int(rng.integers(*SPECK_COUNT_RANGE))
    rows, columns = rng.integers(0, FIELD_SIZE, (2, count))
    specks[rows, columns] = rng.uniform(*SPECK_PEAK_RANGE, count).astype(np.float32) * 2 * math.pi * 0.8 ** 2
    sky += gain * cv2.GaussianBlur(specks, (0, 0), 0.8)
    if distortion.flat > 0:
        texture = np.float32(1 - min(1.0, distortion.flat / 2))
        sky = texture * sky + (1 - texture) * np.float32(rng.uniform()) * level
    if distortion.seams > 0:
        factors = 2.0 ** rng.normal(0, 0.35 * distortion.seams, (SEAM_TILES, SEAM_TILES))
        sky *= cv2.resize(factors.astype(np.float32), (FIELD_SIZE, FIELD_SIZE), interpolation=cv2.INTER_NEAREST)
    if distortion.fog > 0:
        sky += np.float32(12 * distortion.fog)
    return sky


def _blocky(field: np.ndarray, severity: float) -> np.ndarray:
    """`field` shrunk by a factor 2^(1+severity) (area average) and enlarged back by repeating pixels."""
    small = max(1, round(FIELD_SIZE / 2 ** (1 + severity)))
    shrunk = cv2.resize(field, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(shrunk, field.shape[::-1], interpolation=cv2.INTER_NEAREST)


def render_field(rng: np.random.Generator, distortion: Distortion = Distortion()) -> tuple[np.ndarray, Stars]:
    """One 1000×1000 uint8 star field drawn from `rng` (a real one unless `distortion` says otherwise),
    and the stars drawn on it."""
    stars = _random_stars(distortion, rng)
    light = np.zeros((FIELD_SIZE, FIELD_SIZE), np.float32)
    draw_stars(light, stars, distortion.hard)
    if distortion.blur > 0:
        light = cv2.GaussianBlur(light, (0, 0), 2 * distortion.blur)
    light += _background(distortion, rng)
    if distortion.noise > 0:
        light += np.float32(8 * distortion.noise) * rng.standard_normal(light.shape, dtype=np.float32)
    if distortion.smooth > 0:
        light = cv2.GaussianBlur(light, (0, 0), 1.5 * distortion.smooth)
    if distortion.blocky > 0:
        light = _blocky(light, distortion.blocky)
    field = np.clip(np.rint(light), 0, 255).astype(np.uint8)
    if distortion.attack > 0:
        field = adversarial_field(field, rng, min(1.0, distortion.attack / 2))
    return field, stars


def _rng(seed: int, subset: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SETS.index(subset), index])


def random_distortion(rng: np.random.Generator, fake: bool, version: int = SCORED_VERSION) -> Distortion:
    """A scored field: 0-3 distortions of severity 0.1-2 among those of scored-set `version` (version 1: 10% stay
    real; version 2: 25%, so a scorer learns the top of the scale); a labeled fake: 1-2 of the mild DISTORTIONS
    of severity 1-3."""
    if version not in SCORED_VERSIONS:
        raise DataError(f"there is no scored-set version {version}. Use one of {sorted(SCORED_VERSIONS)}")
    if fake:
        count, low, high = int(rng.integers(1, 3)), 1.0, 3.0
    elif version == 1:
        count, low, high = int(rng.choice(4, p=(0.1, 0.4, 0.3, 0.2))), 0.1, 2.0
    else:
        count, low, high = int(rng.choice(4, p=(0.25, 0.3, 0.3, 0.15))), 0.1, 2.0
    names = DISTORTIONS if fake else SCORED_VERSIONS[version]
    chosen = rng.choice(len(names), count, replace=False)
    severities = dict.fromkeys(names, 0.0)
    for k in chosen:
        severities[names[k]] = float(rng.uniform(low, high))
    # the count severity is what the realised star count says, so the score matches the image
    fewer = bool(rng.random() < 0.5)
    if severities["count"]:
        excess = max(1, round(4 * severities["count"]))
        severities["count"] = (min(excess, STAR_COUNT_RANGE[0]) if fewer else excess) / 4
    severities["boxy"] = min(severities["boxy"], 2.0)
    return Distortion(**severities, fewer=fewer)


class StarFields(Source):
    """`n` real star fields (unlabeled, 1000×1000×1 uint8); field i depends only on (seed, i)."""

    name = "star-fields"
    channels = 1

    def __init__(self, n: int = DEFAULT_N, seed: int = 0):
        if n <= 0:
            raise DataError(f"star fields need a positive number of images, got {n}. Pass n >= 1")
        if seed < 0:
            raise DataError(f"the seed must be a non-negative integer, got {seed}. Use e.g. --seed 0")
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def labels(self) -> np.ndarray:
        return np.full(self.n, -1, np.int64)

    def field(self, index: int) -> tuple[np.ndarray, Stars]:
        """Field `index` (uint8, 1000×1000) and the stars drawn on it."""
        return render_field(_rng(self.seed, "fields", index))

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Fields start..stop-1, rendered on all cores by threads (NumPy and OpenCV release the GIL)."""
        indices = range(max(0, start), min(self.n, stop))
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            fields = list(pool.map(lambda index: self.field(index)[0], indices))
        images = np.stack(fields)[..., None] if fields else np.empty((0, FIELD_SIZE, FIELD_SIZE, 1), np.uint8)
        return images, self.labels()[:len(indices)]


class ScoredStarFields(StarFields):
    """`n` scored fields, field for field the `scored/` set that `write_cil(seed=seed, scored_version=version)`
    writes: real fields with random distortions, their score 0-8 in `scores` and `metadata(...)["score"]`;
    unlabeled. `version` picks the distortions (SCORED_VERSIONS), so a scorer trained on an older set can be
    checked on the set it learned."""

    def __init__(self, n: int = DEFAULT_N, seed: int = 0, version: int = SCORED_VERSION):
        super().__init__(n, seed)
        self.version = version
        self.scores = np.array([random_distortion(_rng(seed, "scored", i), False, version).score for i in range(n)])

    def field(self, index: int) -> tuple[np.ndarray, Stars]:
        rng = _rng(self.seed, "scored", index)
        return render_field(rng, random_distortion(rng, False, self.version))

    def metadata(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": self.scores[np.asarray(indices)]}


def open_scored(data_dir: str | None = None, image_size: int = FIELD_SIZE, seed: int = 0) -> ScoredStarFields:
    """The scored fields `datasets.load("star-fields", scored=True)` opens (what the scorers learn from)."""
    return ScoredStarFields(seed=seed)


def open_source(data_dir: str | None = None, image_size: int = FIELD_SIZE, seed: int = 0) -> StarFields:
    """The dataset `datasets.load("star-fields")` opens: fields are always 1000 px (the pipeline resizes or
    tiles them); `data_dir` and `image_size` are unused."""
    return StarFields(seed=seed)


def _unique_ids(count: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct 7-digit ids in random order, like the CIL file names."""
    return rng.choice(np.arange(1_000_000, 10_000_000), count, replace=False)


def _csv_text(ids: np.ndarray, values: Sequence[float]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["Id", "Actual"])
    writer.writerows((int(i), f"{v:.6g}") for i, v in zip(ids, values))
    return text.getvalue()


def write_cil(folder: str | os.PathLike, n: int = 100, n_scored: int | None = None, n_query: int | None = None,
              seed: int = 0, progress: bool = False, scored_version: int = SCORED_VERSION) -> Path:
    """Writes a CIL cosmology layout to `folder` (which must not exist or be empty) and returns it.

    labeled/ holds `n` fields, about half real (Actual 1.0), the rest fakes (Actual 0.0); scored/ holds
    `n_scored` (default n) fields with their score (`Distortion.score`) from the distortions of
    `scored_version`; query/ holds `n_query` (default n // 2) fields of that scored mix without scores;
    rendering.json records the seed and the scored-set version. Everything is written to a temporary folder
    first and renamed, so an interrupted run leaves nothing behind.
    """
    from tqdm import tqdm

    folder = Path(folder)
    n_scored = n if n_scored is None else n_scored
    n_query = n // 2 if n_query is None else n_query
    if min(n, n_scored, n_query) < 0 or n == 0:
        raise DataError(f"a CIL layout needs n >= 1 labeled fields and no negative counts, got n={n}, "
                        f"scored={n_scored}, query={n_query}. Pass e.g. --n 100")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError(f"{folder} already exists and is not an empty folder. Choose a new folder for --write")
    if scored_version not in SCORED_VERSIONS:
        raise DataError(f"there is no scored-set version {scored_version}. Use one of {sorted(SCORED_VERSIONS)}")

    def write(temporary: str) -> None:
        staging = Path(temporary)
        staging.mkdir()
        layout_rng = np.random.default_rng([seed, len(SETS)])
        real = np.zeros(n, bool)
        real[layout_rng.permutation(n)[:(n + 1) // 2]] = True
        plan = {"labeled": (_unique_ids(n, layout_rng), real),
                "scored": (_unique_ids(n_scored, layout_rng), np.zeros(n_scored, bool)),
                "query": (_unique_ids(n_query, layout_rng), np.zeros(n_query, bool))}
        scores: dict[str, list[float]] = {}
        for subset, (ids, is_real) in plan.items():
            (staging / subset).mkdir()

            def write_field(index: int) -> float:
                rng = _rng(seed, subset, index)
                distortion = Distortion() if is_real[index] else random_distortion(rng, subset == "labeled",
                                                                                       scored_version)
                if not cv2.imwrite(str(staging / subset / f"{ids[index]}.png"), render_field(rng, distortion)[0]):
                    raise OSError(f"could not write {folder / subset / f'{ids[index]}.png'}")
                return distortion.score

            with ThreadPoolExecutor(os.cpu_count()) as pool:     # NumPy, OpenCV and PNG encoding release the GIL
                scores[subset] = list(tqdm(pool.map(write_field, range(len(ids))), total=len(ids), desc=subset,
                                           disable=not progress, unit="field"))
        (staging / "labeled.csv").write_text(_csv_text(plan["labeled"][0], real.astype(float)))
        (staging / "scored.csv").write_text(_csv_text(plan["scored"][0], scores["scored"]))
        (staging / "rendering.json").write_text(json.dumps({"seed": seed, "scored_version": scored_version}) + "\n")

    write_atomic(folder, write)
    return folder
