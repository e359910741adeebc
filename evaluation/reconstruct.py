"""How well does an autoencoder or VAE keep what a galaxy looks like? `evaluate.py reconstruct` measures it.

Every image of the run's held-out validation split (the split train.py held out, read as `evaluate.py retrieval`
reads it) is reconstructed and compared with its original by pixel MSE and SSIM (scikit-image, data range 1,
channels averaged). Pixel errors cannot tell a round blob from a barred spiral of the same size and colour, so a
judge (`--judge`: a trained classifier run) also names the class of each original and of its reconstruction:
a reconstruction keeps the class when the two agree. The judge's own accuracy on the originals is reported
beside it, when it was trained on the same classes.

The rendered Milky Way (`--query milky-way` of `evaluate.py neighbours`) is reconstructed too, its MSE set beside
the validation mean. A model that can also generate has as many samples (`generate(n, seed)`, drawn as
`evaluate.py generate --seed` draws them) judged the same way: their share per judge class, and their mean
brightness beside the originals'.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity
from tqdm import tqdm

import zoo
from core.errors import DataError
from core.files import save_figure, writable, write_json
from core.runs import load_config
from core.tables import text_table
from datasets.pipeline import data_errors, make_dataset, run_split
from evaluation.generation import sampled_batches
from search.embedding import gallery_spec
from search.queries import MILKY_WAY, load_query, query_title

SHOWN_PER_CLASS = 2          # held-out images per class in reconstruct.png
SHOWN_UNLABELED = 10         # held-out images in reconstruct.png when the dataset has no classes


class Judge(zoo.RunOnImages):
    """A trained classifier run that names the class of images, resized to the size it was trained at."""

    def __init__(self, run_dir: str | Path, channels: int):
        super().__init__(run_dir, "classify", flag="--judge", refusal="which does not classify images")
        if self.model.channels != channels:
            raise DataError(f"--judge run '{run_dir}' classifies {self.model.channels}-channel images, the "
                            f"reconstructions have {channels}. Pass a judge trained on images of this kind")
        self.class_names = tuple(self.config["class_names"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """The judge's class index of each image."""
        return np.asarray(super().__call__(images)).argmax(axis=1)


def ssim(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image SSIM of two batches in [0, 1] (scikit-image's 7×7 window, channels averaged)."""
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1)
                     for a, b in zip(originals, reconstructions)])


def per_group(values: np.ndarray, groups: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Mean of `values` per group, keyed by the group's name (groups without images left out)."""
    return {name: float(values[groups == g].mean()) for g, name in enumerate(names) if np.any(groups == g)}


def summary(values: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "per_class": per_group(values, labels, class_names)}


class Shown:
    """Keeps the held-out images shown in the figure while the split streams past: the first SHOWN_PER_CLASS of
    each class (the first SHOWN_UNLABELED when unlabeled), as (label, row, original, reconstruction)."""

    def __init__(self, n_classes: int):
        self.n_classes, self.items = n_classes, []

    def add(self, start: int, images: np.ndarray, reconstructions: np.ndarray, labels: np.ndarray) -> None:
        for k, label in enumerate(labels.tolist()):
            if self.n_classes == 0:
                wanted = len(self.items) < SHOWN_UNLABELED
            else:
                wanted = 0 <= label < self.n_classes and [item[0] for item in self.items].count(label) < SHOWN_PER_CLASS
            if wanted:
                self.items.append((label, start + k, images[k], reconstructions[k]))

    def in_class_order(self) -> list[tuple]:
        return sorted(self.items, key=lambda item: item[:2])


def judge_generated(model, judge: Judge, n: int, seed: int, batch_size: int) -> dict:
    """The judge's classes of n images from the model's `generate`, as shares, and their mean brightness."""
    classes, brightness = [], []
    for batch in sampled_batches(model, n, seed, batch_size):
        batch = np.asarray(batch, np.float32)
        classes.append(judge(batch))
        brightness.append(batch.mean(axis=(1, 2, 3)))
    classes = np.concatenate(classes)
    return {"n": n, "seed": seed, "mean_brightness": float(np.concatenate(brightness).mean()),
            "judge_class_shares": {name: float(np.mean(classes == c)) for c, name in enumerate(judge.class_names)}}


def judge_summary(judge: Judge, judged: np.ndarray, judged_reconstructions: np.ndarray, labels: np.ndarray,
                  class_names: tuple[str, ...]) -> dict:
    """The share of reconstructions whose judged class is the original's, overall and per class (the true class,
    else the judge's class of the original), and the judge's accuracy when it knows the dataset's classes."""
    kept = judged == judged_reconstructions
    groups, group_names = (labels, class_names) if class_names else (judged, judge.class_names)
    same_classes = judge.class_names == tuple(class_names)
    return {"run": judge.run, "class_names": list(judge.class_names),
            "class_kept": float(kept.mean()), "class_kept_per_class": per_group(kept, groups, group_names),
            "accuracy_on_originals": float(np.mean(judged == labels)) if same_classes else None,
            "accuracy_on_reconstructions": float(np.mean(judged_reconstructions == labels)) if same_classes else None,
            "generated": None}


def evaluate_reconstruction(run_dir: str | Path, judge_run: str | Path | None = None,
                            out_dir: str | Path | None = None, seed: int = 0, batch_size: int = 256) -> dict:
    """Reconstruction errors on the run's validation split and of the Milky Way; with `judge_run`, the share of
    reconstructions that keep the judge's class (and the judged classes of generated images, for models that
    generate). Writes reconstruct.json and reconstruct.png to `out_dir` when given."""
    model = zoo.load(run_dir)
    zoo.require(model, "reconstruct", refusal=f"run '{run_dir}' is a {model.zoo_name}, which cannot reconstruct images")
    spec = gallery_spec(run_dir)
    source = spec.open()
    judge = Judge(judge_run, source.channels) if judge_run is not None else None
    if out_dir is not None:
        writable(out_dir)
    dataset = make_dataset(run_split(load_config(run_dir), source), image_size=spec.image_size, crop=spec.crop,
                           batch_size=batch_size, cache=False)
    errors, similarities, labels, brightness, judged, judged_reconstructions = [], [], [], [], [], []
    shown = Shown(len(source.class_names))
    with data_errors(), tqdm(desc="reconstructing", unit="img", leave=False) as progress:
        for images, batch_labels in dataset.as_numpy_iterator():
            reconstructions = np.asarray(model.reconstruct(images), np.float32)
            shown.add(progress.n, images, reconstructions, batch_labels)
            errors.append(np.mean((reconstructions - images) ** 2, axis=(1, 2, 3)))
            similarities.append(ssim(images, reconstructions))
            brightness.append(images.mean(axis=(1, 2, 3)))
            labels.append(batch_labels)
            if judge is not None:
                judged.append(judge(images))
                judged_reconstructions.append(judge(reconstructions))
            progress.update(len(images))
    errors, similarities, labels = np.concatenate(errors), np.concatenate(similarities), np.concatenate(labels)
    milky_way = load_query(MILKY_WAY, spec, source.channels)
    milky_way_reconstruction = np.asarray(model.reconstruct(milky_way), np.float32)
    milky_way_error = float(np.mean((milky_way_reconstruction - milky_way) ** 2))
    result = {
        "run": str(run_dir), "model": model.zoo_name, "dataset": spec.dataset, "n": len(errors),
        "image_size": spec.image_size, "class_names": list(source.class_names),
        "mse": summary(errors, labels, source.class_names),
        "ssim": summary(similarities, labels, source.class_names),
        "milky_way": {"mse": milky_way_error, "ssim": float(ssim(milky_way, milky_way_reconstruction)[0]),
                      "mse_below_validation_mean": milky_way_error < float(errors.mean())},
        "judge": None,
    }
    figure_items = shown.in_class_order()
    rows = [row for _, row, _, _ in figure_items]
    titles = [source.class_names[label] if source.labeled else f"#{row}" for label, row, _, _ in figure_items]
    if judge is not None:
        judged, judged_reconstructions = np.concatenate(judged), np.concatenate(judged_reconstructions)
        kept = judged == judged_reconstructions
        result["judge"] = judge_summary(judge, judged, judged_reconstructions, labels, source.class_names)
        if "generate" in zoo.capabilities(model):
            result["judge"]["generated"] = {
                **judge_generated(model, judge, len(errors), seed, batch_size),
                "originals_mean_brightness": float(np.concatenate(brightness).mean())}
        milky_way_classes = judge(np.concatenate([milky_way, milky_way_reconstruction]))
        result["milky_way"].update(judge_class=judge.class_names[milky_way_classes[0]],
                                   reconstruction_judge_class=judge.class_names[milky_way_classes[1]])
        titles = [f"{title}\n{'kept' if kept[row] else 'lost'}: {judge.class_names[judged_reconstructions[row]]}"
                  for title, row in zip(titles, rows)]
    if out_dir is not None:
        write_json(Path(out_dir) / "reconstruct.json", result)
        originals = np.stack([milky_way[0], *(item[2] for item in figure_items)])
        reconstructions = np.stack([milky_way_reconstruction[0], *(item[3] for item in figure_items)])
        save_figure(Path(out_dir) / "reconstruct.png", reconstruction_figure(
            originals, reconstructions, [query_title(MILKY_WAY), *titles], [milky_way_error, *errors[rows]], result))
    return result


def reconstruction_figure(originals: np.ndarray, reconstructions: np.ndarray, titles: list[str],
                          errors: list[float], result: dict):
    """Originals above their reconstructions, one column per image (the Milky Way first), titled with the class
    (and what the judge made of the reconstruction) and the reconstruction's MSE."""
    import matplotlib.pyplot as plt

    columns = len(originals)
    figure, axes = plt.subplots(2, columns, figsize=(1.25 * columns, 3.1), squeeze=False)
    grey = originals.shape[-1] == 1
    for column in range(columns):
        for row, image in enumerate((originals[column], reconstructions[column])):
            axis = axes[row, column]
            axis.imshow(image.squeeze(), cmap="gray" if grey else None, vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0, column].set_title(titles[column], fontsize=6)
        axes[1, column].set_xlabel(f"MSE {errors[column]:.4f}", fontsize=6)
    axes[0, 0].set_ylabel("original", fontsize=7)
    axes[1, 0].set_ylabel("reconstruction", fontsize=7)
    kept = "" if result["judge"] is None else f", class kept {result['judge']['class_kept']:.2f}"
    figure.suptitle(f"{result['model']}: {result['n']} held-out images, MSE {result['mse']['mean']:.4f}, "
                    f"SSIM {result['ssim']['mean']:.3f}{kept}", fontsize=8)
    figure.tight_layout()
    return figure


def format_results(result: dict) -> str:
    """A small text table: MSE, SSIM and (with a judge) the share of classes kept, overall, per class and for the
    Milky Way, then what the judge made of it."""
    judge = result["judge"]
    rows = []
    for group in ["all", *result["mse"]["per_class"]]:
        mse = result["mse"]["mean"] if group == "all" else result["mse"]["per_class"][group]
        similarity = result["ssim"]["mean"] if group == "all" else result["ssim"]["per_class"][group]
        rows.append([group, f"{mse:.5f}", f"{similarity:.3f}"])
        if judge:
            kept = judge["class_kept"] if group == "all" else judge["class_kept_per_class"].get(group)
            rows[-1].append("-" if kept is None else f"{kept:.2f}")
    milky_way = result["milky_way"]
    rows.append(["Milky Way", f"{milky_way['mse']:.5f}", f"{milky_way['ssim']:.3f}"])
    lines = [text_table(("class", "MSE", "SSIM", *(("kept",) if judge else ())), rows, "<>>>")]
    if judge:
        lines.append(f"judge on the Milky Way: {milky_way['judge_class']}, on its reconstruction: "
                     f"{milky_way['reconstruction_judge_class']}")
    if judge and judge["accuracy_on_originals"] is not None:
        lines.append(f"judge accuracy: originals {judge['accuracy_on_originals']:.3f}, "
                     f"reconstructions {judge['accuracy_on_reconstructions']:.3f}")
    if judge and judge["generated"]:
        generated = judge["generated"]
        classes = ", ".join(f"{name} {share:.0%}" for name, share in generated["judge_class_shares"].items())
        lines.append(f"generated ({generated['n']}, seed {generated['seed']}): {classes}; mean brightness "
                     f"{generated['mean_brightness']:.3f} (originals {generated['originals_mean_brightness']:.3f})")
    return "\n".join(lines)
