"""How good are generated images? `evaluate.py score` compares one or more generated sets with real images.

A set is a generative run sampled on the fly (`--run`, the same images `evaluate.py generate --seed S` writes with
the same batch size) or a folder of PNGs (`--generated`, e.g. what `evaluate.py generate` wrote). Every set and the
real images are read once, batch by batch (500 star fields of 1000×1000 never sit in memory together), and give:

- `scorer`: mean, std, min and max of a trained scorer's score (`--scorer RUN`: rf-scorer or cnn-scorer);
- `histogram_w1`: the 1-D Wasserstein distance between the pixel-intensity distributions, and
  `power_spectrum_distance`: the L2 distance between the mean log10 radial power spectra (core/metrics.py);
- `fid_domain`, `kid_domain`, `precision`, `recall` (k = 3): on features of a trained zoo model (`--features RUN`:
  its `encode`, else its `classify`; cnn-scorer for star fields, the classifier or an encoder for galaxies).
  `domain` because the features are not Inception's (no weights can be downloaded): compare numbers only
  between sets scored with the same features run;
- `collapse`: the share of near-black images (all of them) and the spread of the first COLLAPSE_IMAGES (pixel std
  and mean pairwise distance, shrunk to at most COLLAPSE_SIDE px; core/collapse.py) beside the real
  images', and a verdict (core.collapse.collapse_reasons on the pairwise distance);
- `source_count`: for star fields, the stars found per field (core.stars.find_stars) beside the real fields'.

With `adversarial` (star fields and a scorer), as many fields built from the real ones to keep their histogram and
power spectrum but with hard-edged stars (datasets/star_fields/adversarial.py, the attack the seed names) are
scored beside the real fields: `adversarial` in score.json holds their SET_KEYS and the `gap`, the real fields'
mean score minus theirs (a scorer that sees star shapes keeps it large).

Star fields are compared whole at the real fields' 1000 px, as the scorers learned them: a run trained on tiles
(`--tile 256`) has each field stitched from its tiles. Other images are compared at the first set's size.
Missing inputs give null values, never missing keys: score.json always has REPORT_KEYS, each set SET_KEYS.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import datasets
import zoo
from core import metrics
from core.collapse import CollapseThresholds, collapse_reasons, collapse_statistics
from core.errors import DataError
from core.files import save_figure, write_json
from core.images import resize_batch
from core.runs import load_config
from core.tables import text_table
from datasets.folder import decode_image
from datasets.pipeline import data_errors, make_dataset, stitch_tiles, tile_offsets
from datasets.star_fields.adversarial import adversarial_field
from evaluation.generation import sampled_batches

STAR_FIELD_DATASETS = ("star-fields", "cil")    # real datasets whose images are compared whole and counted
COLLAPSE_IMAGES = 100
COLLAPSE_SIDE = 256
SPECTRUM_BANDS = 32
KID_SUBSETS = 50
KID_SUBSET_SIZE = 100
NEIGHBOURS_K = 3
MIN_IMAGES = NEIGHBOURS_K + 1
REPORT_KEYS = ("real", "sets", "ranking", "ranked_by", "scorer_run", "features_run", "seed", "adversarial")
REAL_KEYS = ("dataset", "data_dir", "n", "image_shape", "scorer", "collapse", "source_count")
SET_KEYS = ("name", "origin", "n", "image_shape", "scorer", "histogram_w1", "power_spectrum_distance", "fid_domain",
            "kid_domain", "precision", "recall", "collapse", "source_count")


@dataclass
class ImageSet:
    """Images to score: a name, where they come from, how many, and a function giving them batch by batch."""

    name: str
    origin: str
    n: int
    batches: Callable[[], Iterator[np.ndarray]]      # float32 NHWC in [0, 1]


@dataclass
class Summary:
    """What one pass over a set keeps: sums and small per-image values, never the images."""

    name: str
    origin: str
    n: int
    image_shape: tuple[int, ...]
    histogram: np.ndarray              # grey-level counts
    spectra: np.ndarray                # (n, bands) log10 radial power
    black_fraction: float
    sample: np.ndarray                 # the first COLLAPSE_IMAGES, shrunk
    scores: np.ndarray | None
    features: np.ndarray | None
    stars: np.ndarray | None


def stitched_batches(model, n: int, seed: int, batch_size: int, tile: int, field_side: int) -> Iterator[np.ndarray]:
    """n whole fields of field_side px from a model that makes tile×tile images, each stitched from the tiles
    `make_dataset(tile=...)` would cut (16 tiles of 256 for 1000 px), as train.py's samples/stitched.png."""
    count = len(tile_offsets(field_side, tile)) ** 2
    for tiles in sampled_batches(model, n * count, seed, batch_size * count):
        yield np.stack([stitch_tiles(field, field_side, field_side)
                        for field in tiles.reshape(-1, count, *tiles.shape[1:])])


def run_set(run_dir: str, n: int, seed: int, batch_size: int, size: int, real_side: int) -> ImageSet:
    """A generative run's samples at size×size; a run trained on tiles gives fields stitched from its tiles."""
    model = zoo.load(run_dir)
    zoo.require(model, "generate", refusal=f"run '{run_dir}' is a {model.zoo_name}, which cannot generate images")
    config = load_config(run_dir)

    def batches():
        if config.tile:
            field_side = round(real_side * config.image_size / config.tile)
            stream = stitched_batches(model, n, seed, batch_size, config.image_size, field_side)
        else:
            stream = sampled_batches(model, n, seed, batch_size)
        return (resize_batch(np.asarray(batch, np.float32), size) for batch in stream)

    return ImageSet(model.zoo_name, str(run_dir), n, batches)


def image_paths(folder: str | Path) -> list[Path]:
    """The images `evaluate.py generate` writes (image_*.png), else every PNG, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--generated {folder} is not a folder. Pass a folder of PNGs, e.g. one written by "
                        "'evaluate.py generate'")
    paths = sorted(folder.glob("image_*.png")) or sorted(folder.glob("*.png"))
    if len(paths) < MIN_IMAGES:
        raise DataError(f"{folder} holds {len(paths)} PNG images, at least {MIN_IMAGES} are needed. "
                        "Write more with 'evaluate.py generate --n 500'")
    return paths


def folder_set(folder: str, n: int, batch_size: int, size: int, channels: int) -> ImageSet:
    """The first n PNGs of a folder (all of them when fewer), each resized to size×size (the folder may mix sizes),
    with the real images' channels."""
    paths = image_paths(folder)[:n]

    def batches():
        for start in range(0, len(paths), batch_size):
            yield np.concatenate([resize_batch(decode_image(path, channels)[None].astype(np.float32) / 255, size)
                                  for path in paths[start:start + batch_size]])

    return ImageSet(Path(folder).name, str(folder), len(paths), batches)


def real_set(dataset: str, data_dir: str | None, n: int, seed: int, size: int, crop: float | None,
             batch_size: int) -> ImageSet:
    """The first n images of a dataset, through the pipeline's crop and resize."""
    source = datasets.load(dataset, data_dir=data_dir, image_size=size, seed=seed, limit=n)

    def batches():
        prepared = make_dataset(source, image_size=size, crop=crop, batch_size=batch_size, cache=False)
        with data_errors():
            for images, _ in prepared.as_numpy_iterator():
                yield images

    return ImageSet("real", dataset, len(source), batches)


def adversarial_set(real: ImageSet, n: int, seed: int) -> ImageSet:
    """`adversarial_field` of each of the first n real fields (histogram and spectrum kept, hard-edged stars)."""
    def batches():
        made = 0
        for batch in real.batches():
            fields = (np.asarray(batch[:n - made, ..., 0]) * 255).round().astype(np.uint8)
            yield np.stack([adversarial_field(field, np.random.default_rng([seed, made + k]))
                            for k, field in enumerate(fields)])[..., None].astype(np.float32) / 255
            made += len(fields)
            if made >= n:
                return

    return ImageSet("adversarial", f"{real.origin}, histogram and spectrum kept, hard-edged stars", n, batches)


class FeatureExtractor(zoo.RunOnImages):
    """A trained zoo model's `encode` (else `classify`) as a feature space, on images resized to its size."""

    def __init__(self, run_dir: str):
        super().__init__(run_dir, "encode", "classify", flag="--features",
                         refusal="which neither encodes nor classifies")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(super().__call__(images), np.float64).reshape(len(images), -1)


def scorer_of(run_dir: str, trust_pickle: bool = False):
    scorer = zoo.load(run_dir, trust_pickle=trust_pickle)
    zoo.require(scorer, "score",
                refusal=f"--scorer run '{run_dir}' is a {scorer.zoo_name}, which does not score images")
    return scorer


def summarise(image_set: ImageSet, scorer=None, features: FeatureExtractor | None = None,
              count_stars: bool = False) -> Summary:
    """One pass over a set: histogram, spectra, near-black share, a shrunk sample, scores, features, star counts."""
    histogram = np.zeros(metrics.GREY_LEVELS, np.int64)
    spectra, sample, scores, vectors, stars = [], [], [], [], []
    black = seen = 0
    shape = None
    with tqdm(total=image_set.n, desc=f"scoring {image_set.name}", unit="img", leave=False) as progress:
        for batch in image_set.batches():
            batch = np.asarray(batch, np.float32)[:image_set.n - seen]
            shape = shape or batch.shape[1:]
            histogram += metrics.pixel_histogram(batch)
            spectra.append(metrics.radial_power_spectrum(batch, spectrum_bands(batch.shape[1])))
            black += int(np.sum(batch.reshape(len(batch), -1).max(axis=1) < CollapseThresholds.black_level))
            if len(sample) < COLLAPSE_IMAGES:
                sample.extend(resize_batch(batch[:COLLAPSE_IMAGES - len(sample)], min(COLLAPSE_SIDE, batch.shape[1])))
            if scorer is not None:
                scores.append(scorer.score(batch))
            if features is not None:
                vectors.append(features(batch))
            if count_stars:
                stars.append(metrics.star_counts(batch))
            seen += len(batch)
            progress.update(len(batch))
            if seen >= image_set.n:
                break
    if seen < MIN_IMAGES:
        raise DataError(f"'{image_set.origin}' gave {seen} images, at least {MIN_IMAGES} are needed. "
                        "Use a larger set or --n")
    return Summary(image_set.name, image_set.origin, seen, tuple(int(s) for s in shape), histogram,
                   np.concatenate(spectra), black / seen, np.stack(sample),
                   np.concatenate(scores) if scorer is not None else None,
                   np.concatenate(vectors) if features is not None else None,
                   np.concatenate(stars) if count_stars else None)


def spectrum_bands(size: int) -> int:
    """SPECTRUM_BANDS, fewer for images under 64 px (a band needs frequencies)."""
    return min(SPECTRUM_BANDS, size // 2)


def spread(values: np.ndarray | None) -> dict | None:
    if values is None:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


def collapse_of(summary: Summary) -> dict[str, float]:
    """collapse_statistics of the shrunk sample, with the near-black share over every image at full size."""
    return {**collapse_statistics(summary.sample), "black_fraction": summary.black_fraction}


def compare(real: Summary, reference: dict[str, float], generated: Summary, seed: int = 0) -> dict:
    """The SET_KEYS of one generated set against the real images (`reference`: their collapse_of). The collapse
    verdict leaves the per-pixel std out: sparse fields (the naive model's black sky) vary only where their
    stars are, so that std is small without any collapse."""
    statistics = collapse_of(generated)
    reasons = collapse_reasons(statistics, reference, spreads=("pairwise_distance",))
    result = {
        "name": generated.name, "origin": generated.origin, "n": generated.n,
        "image_shape": list(generated.image_shape), "scorer": spread(generated.scores),
        "histogram_w1": metrics.histogram_w1(generated.histogram, real.histogram),
        "power_spectrum_distance": metrics.power_spectrum_distance(generated.spectra, real.spectra),
        "fid_domain": None, "kid_domain": None, "precision": None, "recall": None,
        "collapse": {**statistics, **{f"real_{name}": value for name, value in reference.items()},
                     "collapsed": bool(reasons), "reasons": reasons},
        "source_count": None,
    }
    if generated.features is not None:
        found = metrics.precision_recall(real.features, generated.features, NEIGHBOURS_K)
        result.update(fid_domain=metrics.frechet_distance(generated.features, real.features),
                      kid_domain=metrics.kernel_distance(generated.features, real.features, KID_SUBSETS,
                                                         KID_SUBSET_SIZE, seed),
                      precision=found["precision"], recall=found["recall"])
    if generated.stars is not None:
        result["source_count"] = {**spread(generated.stars), "real_mean": float(real.stars.mean()),
                                  "real_std": float(real.stars.std())}
    return result


def ranking(sets: list[dict]) -> tuple[list[str], str]:
    """Set names best first: by mean score (higher is better) with a scorer, else by domain FID, else by
    histogram W1 (lower is better)."""
    if sets and sets[0]["scorer"] is not None:
        return [s["name"] for s in sorted(sets, key=lambda s: -s["scorer"]["mean"])], "scorer mean"
    if sets and sets[0]["fid_domain"] is not None:
        return [s["name"] for s in sorted(sets, key=lambda s: s["fid_domain"])], "fid_domain"
    return [s["name"] for s in sorted(sets, key=lambda s: s["histogram_w1"])], "histogram_w1"


def unique_names(image_sets: list[ImageSet]) -> None:
    """Two sets with the same name (two runs of one model) are named by their paths instead."""
    names = [s.name for s in image_sets]
    for image_set in image_sets:
        if names.count(image_set.name) > 1:
            image_set.name = image_set.origin


def evaluate_sets(runs: list[str] = (), generated: list[str] = (), real: str = "star-fields",
                  data_dir: str | None = None, n: int = 500, scorer: str | None = None, features: str | None = None,
                  seed: int = 0, batch_size: int = 16, trust_pickle: bool = False,
                  adversarial: int | None = None) -> tuple[dict, list[Summary]]:
    """The report (REPORT_KEYS) and the summaries (real first) of every set against the real images; every input
    is checked before any image is made. trust_pickle: read a scorer run of an older version, saved as a pickle.
    adversarial: that many attack fields scored beside the real ones (star fields and a scorer only)."""
    if adversarial is not None and (adversarial < MIN_IMAGES or not scorer or real not in STAR_FIELD_DATASETS):
        raise DataError(f"--adversarial needs at least {MIN_IMAGES} fields, a --scorer run and star fields as --real "
                        f"(star-fields or cil), got {adversarial} fields, scorer {scorer}, real {real}. "
                        "Use e.g. --adversarial 100 --scorer RUN")
    if not runs and not generated:
        raise DataError("nothing to score. Pass --run RUN (a generative run) or --generated DIR (PNGs), or several")
    if n < MIN_IMAGES or batch_size < 1:
        raise DataError(f"--n must be at least {MIN_IMAGES} and --batch-size positive, got {n} and {batch_size}. "
                        "Use e.g. --n 500")
    star_fields = real in STAR_FIELD_DATASETS
    probe = datasets.load(real, data_dir=data_dir, seed=seed, limit=1)
    real_side = int(np.asarray(probe.read(0, 1)[0][0]).shape[0])
    first_run = load_config(runs[0]) if runs else None
    if star_fields:
        size = real_side
    elif first_run:
        size = first_run.image_size
    else:
        size = decode_image(image_paths(generated[0])[0], probe.channels).shape[0]
    crop = first_run.crop if first_run and first_run.dataset == real else None      # galaxies framed as trained
    image_sets = [run_set(run, n, seed, batch_size, size, real_side) for run in runs]
    image_sets += [folder_set(folder, n, batch_size, size, probe.channels) for folder in generated]
    unique_names(image_sets)
    scoring_model = scorer_of(scorer, trust_pickle) if scorer else None
    extractor = FeatureExtractor(features) if features else None
    reference = summarise(real_set(real, data_dir, n, seed, size, crop, batch_size), scoring_model, extractor,
                          star_fields)
    summaries = []
    for image_set in image_sets:
        summary = summarise(image_set, scoring_model, extractor, star_fields)
        if summary.image_shape[-1] != reference.image_shape[-1]:
            raise DataError(f"'{summary.origin}' has {summary.image_shape[-1]}-channel images, the real '{real}' "
                            f"images {reference.image_shape[-1]}. Score it against a dataset of its kind")
        summaries.append(summary)
    real_collapse = collapse_of(reference)
    sets = [compare(reference, real_collapse, summary, seed) for summary in summaries]
    attack = None
    if adversarial is not None:
        attacked = summarise(adversarial_set(real_set(real, data_dir, adversarial, seed, size, crop, batch_size),
                                             adversarial, seed), scoring_model, extractor, star_fields)
        summaries.append(attacked)
        attack = compare(reference, real_collapse, attacked, seed)
        attack["gap"] = float(reference.scores.mean() - attacked.scores.mean())
    names, ranked_by = ranking(sets)
    report = {
        "real": {"dataset": real, "data_dir": data_dir, "n": reference.n, "image_shape": list(reference.image_shape),
                 "scorer": spread(reference.scores), "collapse": real_collapse,
                 "source_count": spread(reference.stars)},
        "sets": sets, "ranking": names, "ranked_by": ranked_by, "scorer_run": scorer, "features_run": features,
        "seed": seed, "adversarial": attack,
    }
    return report, [reference, *summaries]


def score_sets(out_dir: str | Path, **options) -> tuple[dict, list[Summary]]:
    """`evaluate_sets(**options)`, written to out_dir as score.json and score.png; returns what it returned."""
    report, summaries = evaluate_sets(**options)
    out_dir = Path(out_dir)
    write_json(out_dir / "score.json", report)
    save_figure(out_dir / "score.png", report_figure(report, summaries))
    return report, summaries


# Reports ------------------------------------------------------------------------------------------------------

def format_table(report: dict) -> str:
    """The printed comparison: the real images, then the sets best first."""
    def number(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    rows = [("set", "n", "score (min-max)", "hist W1", "PS dist", "FID", "KID", "prec", "recall", "black",
             "spread", "stars")]
    real = report["real"]
    score = real["scorer"]
    rows.append(("real", str(real["n"]), "-" if score is None else f"{score['mean']:.2f} ({score['min']:.2f}-"
                 f"{score['max']:.2f})", "-", "-", "-", "-", "-", "-", f"{real['collapse']['black_fraction']:.0%}",
                 "1.00", "-" if real["source_count"] is None else f"{real['source_count']['mean']:.1f}"))
    by_name = {s["name"]: s for s in report["sets"]}
    for name in report["ranking"]:
        s = by_name[name]
        score, collapse = s["scorer"], s["collapse"]
        ratio = collapse["pairwise_distance"] / collapse["real_pairwise_distance"] if collapse[
            "real_pairwise_distance"] else float("nan")
        rows.append((name, str(s["n"]),
                     "-" if score is None else f"{score['mean']:.2f} ({score['min']:.2f}-{score['max']:.2f})",
                     number(s["histogram_w1"], 4), number(s["power_spectrum_distance"], 2),
                     number(s["fid_domain"], 2), "-" if s["kid_domain"] is None else f"{s['kid_domain']['mean']:.3g}",
                     number(s["precision"], 2), number(s["recall"], 2), f"{collapse['black_fraction']:.0%}",
                     f"{ratio:.2f}" + (" collapsed" if collapse["collapsed"] else ""),
                     "-" if s["source_count"] is None else f"{s['source_count']['mean']:.1f}"))
    attack = report.get("adversarial")
    if attack is not None:
        score = attack["scorer"]
        rows.append((f"adversarial (gap {attack['gap']:.2f})", str(attack["n"]),
                     f"{score['mean']:.2f} ({score['min']:.2f}-{score['max']:.2f})",
                     number(attack["histogram_w1"], 4), number(attack["power_spectrum_distance"], 2),
                     number(attack["fid_domain"], 2), "-", "-", "-", "-", "-",
                     f"{attack['source_count']['mean']:.1f}"))
    return text_table(rows[0], rows[1:])


def average_histogram(summary: Summary) -> np.ndarray:
    """Share of pixels at each grey level over the whole set (the seed's Fig. 4)."""
    return summary.histogram / summary.histogram.sum()


def report_figure(report: dict, summaries: list[Summary]):
    """score.png: the ranking as bars (mean score with min-max, else histogram W1), the average histograms, the
    mean power spectra, and the star counts (star fields) or the sample spread (other images)."""
    import matplotlib.pyplot as plt

    real, *generated = summaries
    by_name = {s["name"]: s for s in report["sets"]}
    ordered = [next(g for g in generated if g.name == name) for name in report["ranking"]]
    colours = {summary.name: f"C{k}" for k, summary in enumerate(generated)} | {"real": "black", "adversarial": "red"}
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    bars, histograms, spectra, extra = axes.ravel()
    names = [s.name for s in ordered]
    if report["real"]["scorer"] is not None:
        shown = [*names, "real"] + (["adversarial"] if report.get("adversarial") else [])
        entries = [*(by_name[name]["scorer"] for name in names), report["real"]["scorer"]]
        entries += [report["adversarial"]["scorer"]] if report.get("adversarial") else []
        means = np.array([e["mean"] for e in entries])
        errors = np.array([[e["mean"] - e["min"] for e in entries], [e["max"] - e["mean"] for e in entries]])
        errors = np.maximum(errors, 0.0)    # a set scored all alike has a mean a rounding error outside min-max
        bars.bar(range(len(entries)), means, yerr=errors, capsize=4, color=[colours[name] for name in shown],
                 alpha=0.8)
        bars.set_xticks(range(len(entries)), shown)
        bars.set(ylabel="score (mean, min-max)", title=f"scorer {Path(report['scorer_run']).name}")
    else:
        bars.bar(range(len(names)), [by_name[name]["histogram_w1"] for name in names],
                 color=[colours[name] for name in names], alpha=0.8)
        bars.set_xticks(range(len(names)), names)
        bars.set(ylabel="histogram W1 to the real images", title="best first")
    for summary in [real, *generated]:
        histograms.plot(np.arange(metrics.GREY_LEVELS), average_histogram(summary), color=colours[summary.name],
                        label=f"{summary.name} ({summary.n})", linewidth=1)
        bands = summary.spectra.shape[1]
        frequencies = (np.arange(bands) + 0.5) * 0.5 / bands
        spectra.plot(frequencies, summary.spectra.mean(axis=0), color=colours[summary.name], label=summary.name)
    histograms.set(yscale="log", xlabel="grey level", ylabel="share of pixels", title="average histogram")
    histograms.legend(fontsize=8)
    spectra.set(xlabel="radial frequency (cycles / px)", ylabel="log10 power", title="mean power spectrum")
    if real.stars is not None:
        top = max(int(max(s.stars.max() for s in summaries)), 1)
        for summary in [real, *generated]:
            extra.hist(summary.stars, bins=np.arange(top + 2) - 0.5, histtype="step", color=colours[summary.name],
                       label=summary.name, density=True)
        extra.set(xlabel="stars found per field", ylabel="share of fields", title="source counts")
        extra.legend(fontsize=8)
    else:
        extra.bar(range(len(names) + 1), [*(by_name[name]["collapse"]["pairwise_distance"] for name in names),
                                          report["real"]["collapse"]["pairwise_distance"]],
                  color=[colours[name] for name in [*names, "real"]], alpha=0.8)
        extra.set_xticks(range(len(names) + 1), [*names, "real"])
        extra.set(ylabel="mean pairwise RMS distance", title="sample spread (collapse)")
    figure.suptitle(f"{', '.join(names)} against {report['real']['n']} real images of {report['real']['dataset']}")
    figure.tight_layout()
    return figure
