"""Keras callbacks that write what a run folder holds beyond Keras' own: epoch timings, sample images (also in
TensorBoard) and, for generative models, the mode-collapse statistics of their samples."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np

from core.collapse import CollapseThresholds, collapse_reasons, collapse_statistics
from core.errors import ModelError
from core.files import save_figure, write_png
from core.images import image_grid
from core.metrics import knn_accuracy


class EpochTimer(keras.callbacks.Callback):
    """Adds `seconds` (wall time of the epoch, validation included) to the logs, so history.csv has timings."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self.started


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training with a ModelError when a loss or metric of an epoch is NaN or infinite (Keras'
    TerminateOnNaN, but saying what to change). Placed before BackupAndRestore, so the diverged weights are never
    checkpointed."""

    def __init__(self, hint: str):
        super().__init__()
        self.hint = hint

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if not np.all(np.isfinite(value)):
                raise ModelError(f"training diverged: {name} became {float(value)} in epoch {epoch + 1}. {self.hint}")


class SampleWriter(keras.callbacks.Callback):
    """Writes samples/ after every epoch from what the model can do.

    reconstruct: originals above their reconstructions; generate: a grid from the same noise every epoch,
    so progress is visible; classify: the validation confusion matrix. With `log_dir`, the image grids also go
    to TensorBoard's Images tab, one step per epoch.
    """

    def __init__(self, folder: Path, capabilities: tuple[str, ...], images: np.ndarray, labels: np.ndarray,
                 class_names: tuple[str, ...], seed: int = 0, log_dir: Path | None = None):
        super().__init__()
        self.folder, self.capabilities = Path(folder), capabilities
        self.images, self.labels, self.class_names, self.seed = images, labels, class_names, seed
        self.log_dir, self.writer = log_dir, None

    def write_grid(self, name: str, grid: np.ndarray, epoch: int) -> None:
        write_png(self.folder / f"{name}_epoch_{epoch + 1:03d}.png", grid)
        if self.log_dir is not None:
            import tensorflow as tf

            self.writer = self.writer or tf.summary.create_file_writer(str(self.log_dir))
            with self.writer.as_default():
                tf.summary.image(name, grid[None], step=epoch + 1)
            self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        tag = f"epoch_{epoch + 1:03d}"
        if "reconstruct" in self.capabilities:
            shown = self.images[:8]
            self.write_grid("reconstructions", image_grid(np.concatenate([shown, self.model.reconstruct(shown)]),
                                                          columns=len(shown)), epoch)
        if "generate" in self.capabilities:
            self.write_grid("generated", image_grid(self.model.generate(16, seed=self.seed)), epoch)
        if "classify" in self.capabilities and self.class_names:
            predicted = self.model.classify(self.images).argmax(axis=1)
            save_figure(self.folder / f"confusion_{tag}.png",
                        confusion_figure(self.labels, predicted, self.class_names, f"validation, epoch {epoch + 1}"))


class CollapseMonitor(keras.callbacks.Callback):
    """After every epoch, measures the spread of `n` generated images (core.collapse) against real ones,
    adds it to the logs (history.csv: sample_pixel_std, sample_black_fraction, sample_pairwise_distance and
    collapsed, 1 when collapsed) and prints a warning line on stderr when the samples look collapsed (after the
    epoch's progress line)."""

    def __init__(self, real_images: np.ndarray, n: int = 64, seed: int = 0,
                 thresholds: CollapseThresholds = CollapseThresholds()):
        super().__init__()
        self.n, self.seed, self.thresholds, self.warning = n, seed, thresholds, None
        self.real = collapse_statistics(real_images[:n], thresholds.black_level) if len(real_images) > 1 else None

    def on_epoch_end(self, epoch, logs=None):
        statistics = collapse_statistics(self.model.generate(self.n, seed=self.seed), self.thresholds.black_level)
        reasons = collapse_reasons(statistics, self.real, self.thresholds)
        if logs is not None:
            logs.update({f"sample_{name}": value for name, value in statistics.items()}, collapsed=float(bool(reasons)))
        if reasons:
            self.warning = f"warning: epoch {epoch + 1}: the generated images look collapsed: {'; '.join(reasons)}"

    def on_epoch_begin(self, epoch, logs=None):
        self.print_warning()

    def on_train_end(self, logs=None):
        self.print_warning()

    def print_warning(self):
        if self.warning:
            print(self.warning, file=sys.stderr, flush=True)
            self.warning = None


class KnnMonitor(keras.callbacks.Callback):
    """After every epoch, encodes labeled training and validation images and adds `val_knn_accuracy` to the logs
    (history.csv): the share of validation images whose k nearest training images (Euclidean, in `encode`'s
    space) vote for their class. It tells whether an encoder trained without labels is learning the classes."""

    def __init__(self, reference_images: np.ndarray, reference_labels: np.ndarray, images: np.ndarray,
                 labels: np.ndarray, k: int = 10):
        super().__init__()
        self.reference_images, self.reference_labels = reference_images, reference_labels
        self.images, self.labels, self.k = images, labels, k

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["val_knn_accuracy"] = knn_accuracy(self.model.encode(self.reference_images), self.reference_labels,
                                                    self.model.encode(self.images), self.labels, self.k)


def confusion_figure(labels: np.ndarray, predicted: np.ndarray, class_names: tuple[str, ...], title: str):
    """A labelled confusion-matrix figure (rows: true class, columns: predicted class)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(labels, predicted, labels=range(len(class_names)))
    figure, axes = plt.subplots(figsize=(1.2 + 0.7 * len(class_names), 1 + 0.6 * len(class_names)))
    axes.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > counts.max() / 2 else "black", fontsize=8)
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = float(np.mean(labels == predicted)) if len(labels) else float("nan")
    axes.set_title(f"{title}: accuracy {accuracy:.3f}", fontsize=9)
    return figure
