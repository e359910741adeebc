"""Keras callbacks that write what a run folder holds beyond Keras' own: epoch timings and sample images."""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from evaluation.files import image_grid, save_figure, write_png


class EpochTimer(keras.callbacks.Callback):
    """Adds `seconds` (wall time of the epoch, validation included) to the logs, so history.csv has timings."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self.started


class SampleWriter(keras.callbacks.Callback):
    """Writes samples/ after every epoch from what the model can do.

    reconstruct: originals above their reconstructions; generate: a grid from the same noise every epoch,
    so progress is visible; classify: the validation confusion matrix.
    """

    def __init__(self, folder: Path, capabilities: tuple[str, ...], images: np.ndarray, labels: np.ndarray,
                 class_names: tuple[str, ...], seed: int = 0):
        super().__init__()
        self.folder, self.capabilities = Path(folder), capabilities
        self.images, self.labels, self.class_names, self.seed = images, labels, class_names, seed

    def on_epoch_end(self, epoch, logs=None):
        tag = f"epoch_{epoch + 1:03d}"
        if "reconstruct" in self.capabilities:
            shown = self.images[:8]
            write_png(self.folder / f"reconstructions_{tag}.png",
                      image_grid(np.concatenate([shown, self.model.reconstruct(shown)]), columns=len(shown)))
        if "generate" in self.capabilities:
            write_png(self.folder / f"generated_{tag}.png", image_grid(self.model.generate(16, seed=self.seed)))
        if "classify" in self.capabilities and self.class_names:
            predicted = self.model.classify(self.images).argmax(axis=1)
            save_figure(self.folder / f"confusion_{tag}.png",
                        confusion_figure(self.labels, predicted, self.class_names, f"validation, epoch {epoch + 1}"))


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
