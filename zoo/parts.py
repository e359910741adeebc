"""The composite-model protocol: models that are not one Keras model (naive, layered, rf-scorer, cnn-scorer).

Such a model trains from whole images of a dataset source instead of batches of a tf.data pipeline, and is
saved as a folder of parts instead of one .keras file. training/run.py and the benchmark ask
`isinstance(model, CompositeModel)` and then use only what this class declares:

- `fit_source(source, *, validation, epochs, batch_size, steps_per_epoch, seed, log, verbose)` reads the
  training split from `source` (`validation`: the held-out split, for models that report on it) and hands each
  stage or epoch to `log` as a history row (a dict); a subclass implements it as `fit_parts(source, validation,
  settings, log)`, so the signature and its defaults are written once, here;
- `sample_grids(seed)` names the images train.py writes to samples/;
- `save(folder)` writes parts.json (the model's name and builder options) and then `save_parts(folder)`;
  the class method `load(folder)` rebuilds the model from parts.json and calls `load_parts(folder)`; the
  registry entry passes `loader=TheClass.load`.

A subclass sets `name` (its registry name), keeps its builder options in `self.options` and says whether it
`trained`; `require_trained()` gives the one error for a model used before it learned anything.
"""
from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from core.errors import ModelError

PARTS_FILE = "parts.json"
HistoryLog = Callable[[dict], None]


@dataclass(frozen=True)
class FitSettings:
    """How long and in what batches a composite model trains; each model uses the settings that apply to it."""

    epochs: int = 1
    batch_size: int = 32
    steps_per_epoch: int | None = None
    seed: int = 0
    verbose: int | str = "auto"      # as Keras' fit: 0 shows no progress bar


class CompositeModel:
    """Base class of the models saved as a folder of parts (see the module docstring)."""

    name: str = ""
    train_dataset: str = "star-fields"      # the built-in dataset the "not trained yet" error suggests
    trust_pickle: bool = False              # set by `load`: whether parts pickled by older versions may be read
    options: dict

    @property
    def trained(self) -> bool:
        raise NotImplementedError

    def require_trained(self) -> None:
        """A ModelError saying how to train the model, unless it is trained."""
        if not self.trained:
            raise ModelError(f"model '{self.name}' is not trained yet. Train it with 'python train.py --model "
                             f"{self.name} --dataset {self.train_dataset}' and load the run with zoo.load")

    def fit_source(self, source, *, validation=None, epochs: int = 1, batch_size: int = 32,
                   steps_per_epoch: int | None = None, seed: int = 0, log: HistoryLog = lambda row: None,
                   verbose: int | str = "auto") -> None:
        """Trains on the images of `source` (a datasets.Source), reporting history rows to `log`."""
        self.fit_parts(source, validation, FitSettings(epochs, batch_size, steps_per_epoch, seed, verbose), log)

    def fit_parts(self, source, validation, settings: FitSettings, log: HistoryLog) -> None:
        raise NotImplementedError

    def sample_grids(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Images for samples/, by file name (without .png)."""
        return {}

    def save_parts(self, folder: Path) -> None:
        raise NotImplementedError

    def load_parts(self, folder: Path) -> None:
        raise NotImplementedError

    def save(self, folder: str | Path) -> None:
        """parts.json and the model's own parts into `folder` (which exists)."""
        folder = Path(folder)
        (folder / PARTS_FILE).write_text(json.dumps({"model": self.name, "options": self.options}, indent=2) + "\n")
        self.save_parts(folder)

    @classmethod
    def load(cls, folder: str | Path, trust_pickle: bool = False):
        """The model saved in `folder`, or a ModelError when a part is missing, unreadable or refused."""
        folder = Path(folder)
        try:
            model = cls(**json.loads((folder / PARTS_FILE).read_text())["options"])
            model.trust_pickle = trust_pickle
            model.load_parts(folder)
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise ModelError(f"{folder} is not a complete {cls.name} model ({error}). Train it again") from None
        return model


class EpochRows(keras.callbacks.Callback):
    """Hands every finished epoch of a Keras fit inside a composite model to `log` as a history row: part, epoch,
    losses, seconds."""

    def __init__(self, part: str, log: HistoryLog):
        super().__init__()
        self.part, self.log = part, log

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.log({"part": self.part, "epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()},
                  "seconds": time.perf_counter() - self.started})
