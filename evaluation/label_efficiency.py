"""How many labels does a pretrained encoder save: validation accuracy against labeled images per class.

For each number of labels per class K (and `all`: the whole training split) and each repeat (seed 0, 1, ...: its
own draw of K images per class, and its own validation split), three ways to a classifier, side by side:

- scratch: the zoo's classifier with its defaults, trained on the K images per class;
- probe: a logistic regression on the frozen encoder's features of the same images (evaluation/retrieval.py);
- fine-tune: `train.py --model classifier --from RUN --labels-per-class K`, the encoder frozen for the first
  `freeze_epochs` epochs, then trained too.

Both networks get the same budget of optimizer steps (epochs × steps per epoch, the data repeated as needed), so
5 labels per class trains as long as 500. The runs are real train.py runs, written to a scratch folder and deleted.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import datasets
from core.errors import DataError
from core.files import save_figure, writable, write_json
from core.runs import TrainConfig
from core.tables import text_table
from datasets.pipeline import few_labels, run_split
from evaluation.retrieval import linear_probe_accuracy
from search.embedding import GallerySpec, embed_source
from training import train
from training.finetune import check_fine_tune
from zoo.finetune import pretrained_encoder
from zoo.inference import predict

METHODS = ("scratch", "probe", "fine-tune")
ALL = "all"


@dataclass(frozen=True)
class Budget:
    """What each network trains for: epochs × steps_per_epoch batches of batch_size images, the encoder frozen
    during the first freeze_epochs."""

    epochs: int = 6
    steps_per_epoch: int = 25
    batch_size: int = 32
    freeze_epochs: int = 2


def parse_labels(text: str) -> tuple[int | str, ...]:
    """'5,10,25,100,all' → (5, 10, 25, 100, 'all'); a DataError for anything else."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items or not all(item == ALL or (item.isdigit() and int(item) > 0) for item in items):
        raise DataError(f"--labels must be positive whole numbers or '{ALL}', comma-separated, got '{text}'. "
                        "Use e.g. --labels 5,10,25,100,all")
    return tuple(item if item == ALL else int(item) for item in items)


def label_efficiency(from_run: str, labels=(5, 10, 25, 100, ALL), repeats: int = 3, out_dir: str | Path | None = None,
                     dataset: str = "synthetic-galaxies", data_dir: str | None = None, limit: int | None = None,
                     budget: Budget = Budget(), validation_fraction: float = 0.1, progress=print) -> dict:
    """Validation accuracy of scratch, probe and fine-tune for every K in `labels` and seed in range(repeats);
    label-efficiency.json and label-efficiency.png in out_dir. Everything is checked before the first run."""
    out = writable(out_dir) if out_dir is not None else None
    if repeats < 1:
        raise DataError(f"--repeats must be at least 1, got {repeats}. Use e.g. --repeats 3")
    runs = {method: TrainConfig(model="classifier", dataset=dataset, data_dir=data_dir, limit=limit,
                                epochs=budget.epochs, steps_per_epoch=budget.steps_per_epoch,
                                batch_size=budget.batch_size, validation_fraction=validation_fraction,
                                **({"from_run": from_run, "freeze_epochs": budget.freeze_epochs}
                                   if method == "fine-tune" else {}))
            for method in ("scratch", "fine-tune")}
    check_fine_tune(runs["fine-tune"])
    size = runs["fine-tune"].image_size
    encoder = pretrained_encoder(from_run)
    source = datasets.load(dataset, data_dir=data_dir, image_size=size, limit=limit)
    if not source.labeled:
        raise DataError(f"label efficiency needs class labels, but dataset '{dataset}' is unlabeled. "
                        "Use a labeled dataset (synthetic-galaxies, galaxy10, a folder with class sub-folders)")
    # each repeat's runs, whose split into training and validation images the probe uses too
    repeat_runs = {seed: replace(runs["scratch"], seed=seed) for seed in range(repeats)}
    draws = {(k, seed): (run_split(repeat_runs[seed], source, "train").indices if k == ALL
                         else few_labels(source, k, validation_fraction, seed))
             for k in labels for seed in range(repeats)}
    features, all_labels = embed_source(source, {"features": lambda images: predict(encoder, images)},
                                        GallerySpec(dataset=dataset, data_dir=data_dir, limit=limit, image_size=size))
    started = time.perf_counter()
    accuracies = {method: {str(k): [] for k in labels} for method in METHODS}
    with tempfile.TemporaryDirectory(prefix="label-efficiency-") as scratch:
        for k in labels:
            for seed in range(repeats):
                rows = draws[k, seed]
                held_out = run_split(repeat_runs[seed], source).indices
                accuracies["probe"][str(k)].append(linear_probe_accuracy(
                    features["features"][rows], all_labels[rows], features["features"][held_out],
                    all_labels[held_out]))
                for method, config in runs.items():
                    config = TrainConfig(**{**vars(config), "image_size": size, "seed": seed,
                                            "labels_per_class": None if k == ALL else k})
                    _, final = train(config, Path(scratch, f"{method}-{k}-{seed}"), verbose=0)
                    accuracies[method][str(k)].append(final["val_accuracy"])
                progress(f"{k} labels per class, seed {seed}: " + "  ".join(
                    f"{method} {accuracies[method][str(k)][-1]:.3f}" for method in METHODS)
                    + f"  ({time.perf_counter() - started:.0f} s)")
    results = {"from": str(from_run), "dataset": dataset, "image_size": size, "labels": [str(k) for k in labels],
               "repeats": repeats, "budget": vars(budget), "n_validation": len(held_out),
               "seconds": time.perf_counter() - started,
               "accuracy": {method: {k: {"values": values, "mean": float(np.mean(values)), "std": float(np.std(values))}
                                     for k, values in per_k.items()} for method, per_k in accuracies.items()}}
    if out is not None:
        write_json(out / "label-efficiency.json", results)
        save_figure(out / "label-efficiency.png", curve_figure(results))
    return results


def curve_figure(results: dict):
    """Mean validation accuracy against labels per class, one line per method, the spread over repeats shaded."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 3.6))
    positions = np.arange(len(results["labels"]))
    for method in METHODS:
        means = np.array([results["accuracy"][method][k]["mean"] for k in results["labels"]])
        spread = np.array([results["accuracy"][method][k]["std"] for k in results["labels"]])
        axes.plot(positions, means, marker="o", label=method)
        axes.fill_between(positions, means - spread, means + spread, alpha=0.2)
    axes.set_xticks(positions, results["labels"])
    axes.set_xlabel("labeled images per class")
    axes.set_ylabel("validation accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.set_title(f"{results['dataset']}, {results['image_size']} px, encoder {results['from']}: "
                   f"mean ± std of {results['repeats']}", fontsize=8)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def format_results(results: dict) -> str:
    """A small table: labels per class, then mean ± std of each method."""
    accuracy = results["accuracy"]
    rows = [(k, *(f"{accuracy[m][k]['mean']:.3f} ± {accuracy[m][k]['std']:.3f}" for m in METHODS))
            for k in results["labels"]]
    return text_table(("labels", *METHODS), rows, ">" * (1 + len(METHODS)))
