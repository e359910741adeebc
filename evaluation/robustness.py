"""Does a model see the galaxy or the camera: its quality under observing conditions it never trained on.

The built-in galaxies are rendered under randomly drawn observing conditions (datasets/synthetic_galaxies/
observe.py). Here the same validation galaxies are rendered again under each of `HELD_OUT_CONDITIONS`, each just
outside its training range (two other stretches, worse seeing, more noise, a crowded star field, a larger galaxy,
a strong colour cast, heavy JPEG), and measured beside the clean set: the classifier's accuracy, and the
embedding's leave-one-out precision@k (each galaxy's k nearest others under the same condition, hits when they
share its class). A model that learned galaxies loses little; one that learned the renderer's look loses much.

The domain gap says how far real galaxies sit from the synthetic ones in the embedding: for each Hubble Deep Field
stamp the distance to its nearest synthetic galaxy, against the same for each synthetic galaxy (nearest other
one); the ratio of the medians is 1 when real stamps look to the model like just more synthetic galaxies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import datasets
import zoo
from core.errors import DataError
from core.files import save_figure, write_json
from core.runs import RunFolder, load_config
from core.tables import text_table
from datasets.hubble import Hubble
from datasets.pipeline import run_split
from datasets.synthetic_galaxies import CLASS_NAMES, DEFAULT_N, SyntheticGalaxies, render
from datasets.synthetic_galaxies.observe import HELD_OUT_CONDITIONS
from search.embedding import default_embedding, embedder
from search.gallery import build_index

CLEAN = "clean"


def render_validation(seed: int, rows: np.ndarray, labels: np.ndarray, size: int, condition: str) -> np.ndarray:
    """Galaxies `rows` of the built-in dataset of `seed`, observed as in training (`clean`) or under a held-out
    condition, as float32 in [0, 1]."""
    held_out_condition = None if condition == CLEAN else condition
    images = [render(int(label), size, np.random.default_rng([seed, int(row)]), held_out_condition)
              for row, label in zip(rows, labels)]
    return np.stack(images).astype(np.float32) / 255.0


def leave_one_out_precision(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean share of same-class galaxies among each galaxy's k nearest others."""
    if len(vectors) <= k:
        raise DataError(f"precision@{k} needs more than {k} galaxies, got {len(vectors)}. Pass a larger --n")
    _, found = build_index(vectors, exact_limit=len(vectors)).search(np.ascontiguousarray(vectors, np.float32), k + 1)
    neighbours = np.array([[j for j in row if j != i][:k] for i, row in enumerate(found)])
    return float(np.mean(labels[neighbours] == labels[:, None]))


def nearest_distances(gallery: np.ndarray, queries: np.ndarray, skip_self: bool) -> np.ndarray:
    """Euclidean distance from each query to its nearest gallery vector (the second nearest when the queries are
    the gallery itself)."""
    found_distances, _ = build_index(gallery, exact_limit=len(gallery)).search(
        np.ascontiguousarray(queries, np.float32), 2 if skip_self else 1)
    return np.sqrt(np.maximum(found_distances[:, -1], 0))


def validation_rows(run_dir: str | Path, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Up to `n` built-in galaxies the run did not train on, their labels and the dataset seed: the run's own
    validation split when it trained on all five built-in classes, else galaxies of the next seed."""
    config = load_config(run_dir)
    if config.dataset == "synthetic-galaxies" and config.classes is None:
        held_out = run_split(config, datasets.load(config.dataset, seed=config.seed, limit=config.limit))
        return held_out.indices[:n], held_out.labels()[:n], config.seed
    source = SyntheticGalaxies(n=DEFAULT_N, seed=config.seed + 1)
    rows = np.arange(min(n, DEFAULT_N))
    return rows, source.labels()[rows], config.seed + 1


def measure_robustness(run_dir: str | Path, n: int = 500, k: int = 10, out_dir: str | Path | None = None) -> dict:
    """Accuracy and precision@k of the run on clean and held-out validation galaxies, and the Hubble domain gap;
    robustness.json and robustness.png in `out_dir` (default RUN/robustness, runs/preset-NAME/ for a preset)."""
    if n < 2:
        raise DataError(f"--n must be at least 2 galaxies, got {n}. Pass e.g. --n 500")
    model = zoo.load(run_dir)
    config = load_config(run_dir)
    size = config.image_size or 64
    embedding = default_embedding(model)
    embed = embedder(model, embedding)
    can_classify = "classify" in zoo.capabilities(model) and getattr(model, "num_classes", None) == len(CLASS_NAMES) \
        and config.classes is None
    rows, labels, seed = validation_rows(run_dir, n)
    results = {"run": str(run_dir), "model": model.zoo_name, "embedding": embedding, "n": len(rows), "k": k,
               "conditions": {}}
    examples = {}
    clean_vectors = None
    for condition in (CLEAN, *HELD_OUT_CONDITIONS):
        images = render_validation(seed, rows, labels, size, condition)
        examples[condition] = images[:6]
        vectors = embed(images)
        scores = {f"precision_at_{k}": leave_one_out_precision(vectors, labels, k)}
        if can_classify:
            scores["accuracy"] = float(np.mean(np.argmax(model.classify(images), axis=1) == labels))
        results["conditions"][condition] = scores
        if condition == CLEAN:
            clean_vectors = vectors
        print(f"{condition:>8}: " + ", ".join(f"{name} {value:.3f}" for name, value in scores.items()), flush=True)
    clean = results["conditions"][CLEAN]
    for name in clean:
        drops = {c: clean[name] - s[name] for c, s in results["conditions"].items() if c != CLEAN}
        results[f"largest_{name}_drop"] = max(drops.values())
        results[f"condition_of_largest_{name}_drop"] = max(drops, key=drops.get)
    stamps = Hubble(size)
    hubble = np.asarray(stamps.read(0, len(stamps))[0], np.float32) / 255.0
    real_vectors = embed(hubble)
    real_to_synthetic = nearest_distances(clean_vectors, real_vectors, skip_self=False)
    synthetic_to_synthetic = nearest_distances(clean_vectors, clean_vectors, skip_self=True)
    results["hubble_domain_gap"] = {
        "stamps": len(hubble), "median_real_to_synthetic": float(np.median(real_to_synthetic)),
        "median_synthetic_to_synthetic": float(np.median(synthetic_to_synthetic)),
        "ratio": float(np.median(real_to_synthetic) / max(np.median(synthetic_to_synthetic), 1e-12))}
    out_dir = Path(out_dir) if out_dir is not None else RunFolder(run_dir).results("robustness")
    write_json(out_dir / "robustness.json", results)
    save_figure(out_dir / "robustness.png", robustness_figure(results, examples))
    return results


def robustness_figure(results: dict, examples: dict[str, np.ndarray]):
    """Bars of each score per condition (clean first), and below them the same galaxies under each condition."""
    import matplotlib.pyplot as plt

    conditions = list(results["conditions"])
    metrics = list(results["conditions"][CLEAN])
    columns = max(len(examples[CLEAN]), 1)
    figure = plt.figure(figsize=(max(10, 1.3 * len(conditions)), 3.5 + 1.1 * len(conditions)))
    grid = figure.add_gridspec(1 + len(conditions), columns, height_ratios=[3] + [1] * len(conditions), hspace=0.35)
    bars = figure.add_subplot(grid[0, :])
    width = 0.8 / len(metrics)
    for m, metric in enumerate(metrics):
        values = [results["conditions"][c][metric] for c in conditions]
        bars.bar(np.arange(len(conditions)) + m * width, values, width, label=metric.replace("_", " "))
    bars.set_xticks(np.arange(len(conditions)) + width * (len(metrics) - 1) / 2, conditions)
    bars.set_ylim(0, 1)
    bars.legend(loc="lower right")
    bars.tick_params(axis="x", pad=2)
    bars.set_title(f"{results['model']}: held-out observing conditions ({results['n']} validation galaxies); "
                   f"Hubble domain gap {results['hubble_domain_gap']['ratio']:.2f}")
    for r, condition in enumerate(conditions):
        for c, image in enumerate(examples[condition]):
            axis = figure.add_subplot(grid[1 + r, c])
            axis.imshow(np.clip(image, 0, 1))
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(condition, rotation=0, ha="right", va="center")
    return figure


def format_results(results: dict) -> str:
    """A small table: one row per condition, one column per score."""
    metrics = list(results["conditions"][CLEAN])
    rows = [(condition, *(f"{scores[m]:.3f}" for m in metrics)) for condition, scores in results["conditions"].items()]
    gap = results["hubble_domain_gap"]
    return (text_table(("condition", *metrics), rows, "<" + ">" * len(metrics))
            + f"\nHubble domain gap: real→synthetic {gap['median_real_to_synthetic']:.3f} / synthetic→synthetic "
              f"{gap['median_synthetic_to_synthetic']:.3f} = {gap['ratio']:.2f}")
