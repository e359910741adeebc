"""Run folders: what `train.py` writes and every other command reads, named and parsed in one place.

A run folder (docs/architecture.md) holds config.json (every option and default, the package versions), the trained
model (model.keras, or model/ for a model of parts), history.csv, logs/ (TensorBoard), samples/ and checkpoint/
(for --resume).

A run argument is a folder path or `preset:NAME`, a run folder shipped under presets/NAME at the repository root
(read-only: commands write their default outputs to runs/preset-NAME/ instead). ASTROZOO_PRESETS_DIR, when set,
replaces presets/ (tests point it at a folder of their own).
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ModelError

DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 32
STRATEGIES = ("none", "mirrored", "data-parallel")     # TrainConfig.distribute: see training/distribute.py
PRESET = "preset:"


def presets_dir() -> Path:
    """The folder of shipped presets: $ASTROZOO_PRESETS_DIR, else presets/ at the repository root."""
    return Path(os.environ.get("ASTROZOO_PRESETS_DIR") or Path(__file__).resolve().parent.parent / "presets")


def list_presets() -> list[str]:
    """The names of the shipped presets: the folders in presets_dir() that hold a config.json."""
    folder = presets_dir()
    return sorted(path.parent.name for path in folder.glob("*/config.json")) if folder.is_dir() else []


def resolve_run(run: str | Path) -> Path:
    """The folder a run argument names: presets_dir()/NAME for `preset:NAME`, else the path as given. An unknown
    or empty preset name is a ModelError listing the shipped ones."""
    text = str(run)
    if not text.startswith(PRESET):
        return Path(run)
    name, shipped = text[len(PRESET):], list_presets()
    if name not in shipped:
        what = f"unknown preset '{name}'" if name else f"'{text}' names no preset"
        choose = (f"Choose one of: {', '.join(shipped)}" if shipped
                  else f"No presets are shipped in {presets_dir()}; pass a run folder written by train.py")
        raise ModelError(f"{what}. {choose}")
    return presets_dir() / name


@dataclass
class TrainConfig:
    """Every option of a run; train.py's flags map one to one onto these fields."""

    model: str
    dataset: str = "synthetic-galaxies"
    data_dir: str | None = None
    classes: str | None = None
    limit: int | None = None
    image_size: int | None = None      # None: the tile size, else the model's world's (core.worlds)
    crop: float | None = None
    tile: int | None = None
    epochs: int | None = None          # None: the model's own (its builder's `epochs`), else DEFAULT_EPOCHS
    steps_per_epoch: int | None = None
    batch_size: int | None = None      # None: the model's own (its builder's `batch_size`), else DEFAULT_BATCH_SIZE
    learning_rate: float | None = None
    validation_fraction: float = 0.1
    augment: bool = True
    seed: int = 0
    options: dict = field(default_factory=dict)
    distribute: str = "none"           # none, mirrored (TensorFlow) or data-parallel (JAX): training/distribute.py
    devices: int | None = None         # replicas; None: every local GPU (mirrored) or device (data-parallel)
    from_run: str | None = None        # classifier only: fine-tune the encoder of this run or preset (zoo/finetune.py)
    freeze_epochs: int | None = None   # with from_run: epochs with the encoder frozen; None: half of the epochs
    labels_per_class: int | None = None  # train on this many labeled images per class of the training split (seeded)


class RunFolder:
    """The paths inside one run folder, named by a path or `preset:NAME` (resolve_run)."""

    def __init__(self, root: str | Path):
        self.root = resolve_run(root)
        inside = self.root.resolve().parent == presets_dir().resolve()
        self.preset = self.root.name if inside else None     # a shipped preset's name: read-only
        self.config = self.root / "config.json"
        self.model = self.root / "model.keras"      # a model that is one Keras model
        self.parts = self.root / "model"            # the folder of parts of a composite model (zoo/parts.py)
        self.history = self.root / "history.csv"
        self.logs = self.root / "logs"
        self.samples = self.root / "samples"
        self.checkpoint = self.root / "checkpoint"

    def saved_model(self) -> Path | None:
        """The trained model's file or folder, None while the run has not finished."""
        return next((path for path in (self.model, self.parts) if path.exists()), None)

    def results(self, what: str) -> Path:
        """Where a command writes its `what` by default: RUN/what, or runs/preset-NAME/what for a shipped preset,
        so that presets/ stays as shipped."""
        return Path("runs", f"preset-{self.preset}", what) if self.preset else self.root / what

    def read_config(self) -> dict:
        """config.json as a dict, or a ModelError saying this is no run folder."""
        try:
            saved = json.loads(self.config.read_text())
            if not isinstance(saved, dict) or "model" not in saved:
                raise ValueError("no model in config.json")
            return saved
        except (OSError, ValueError):
            raise ModelError(f"'{self.root}' is not a run folder (no readable config.json). "
                             "Pass a folder written by train.py") from None


def fits(value, annotation) -> bool:
    """Whether a JSON value fits a field annotated `annotation` (whole numbers pass for floats, true/false only for
    booleans)."""
    accepted = typing.get_args(annotation) or (annotation,)
    if isinstance(value, bool):
        return bool in accepted
    return isinstance(value, accepted) or (float in accepted and isinstance(value, int))


def load_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run folder was trained with; a ModelError when a value is not of its field's type (a
    config.json edited by hand)."""
    saved = RunFolder(run_dir).read_config()
    types = typing.get_type_hints(TrainConfig)
    values = {f.name: saved[f.name] for f in dataclasses.fields(TrainConfig) if f.name in saved}
    for name, value in values.items():
        if not fits(value, types[name]):
            raise ModelError(f"'{run_dir}' has a config.json that train.py did not write ({name} is "
                             f"{json.dumps(value)}). Pass a folder written by train.py")
    return TrainConfig(**values)
