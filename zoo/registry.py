"""The model registry: one decorator and three functions (timm's register_model / create_model / list_models).

An entry is a builder function; its keyword defaults are the model's defaults, in one place. The entry also
declares the image world it belongs to and the capabilities its model offers, so callers ask the model what
it can do instead of checking its name.
"""
from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelError
from core.images import resize_batch
from core.runs import RunFolder
from core.worlds import WORLDS

CAPABILITIES = ("classify", "encode", "decode", "reconstruct", "generate", "score")
MAX_SEED = 2 ** 32 - 1      # NumPy and Keras seeds


@dataclass(frozen=True)
class Range:
    """The values a numeric builder option accepts: low to high, each bound included unless `*_open`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (math.isfinite(value)
                and (self.low is None or value > self.low or (value == self.low and not self.low_open))
                and (self.high is None or value < self.high or (value == self.high and not self.high_open)))

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:,}"
        high = "" if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high:,}"
        return " and ".join(part for part in (low, high) if part) or "finite"


# Options are named alike across models, so their ranges are declared once, by name. Any other whole-number
# option is a size or count (at least 1), any other number a rate or scale (above 0).
OPTION_RANGES = {
    "seed": Range(0, MAX_SEED),
    "dropout": Range(0, 1, high_open=True),
    "max_features": Range(0, 1, low_open=True),
    "threshold": Range(0, 255, low_open=True),
    "beta": Range(0),
    "gp_weight": Range(0),
    "drift_weight": Range(0),
    "min_sigma": Range(0),            # the VAE's floor of its pixel σ; 0: none
    "shift": Range(0, 0.25),         # simclr's augmentations: shift (share of the side), zoom (factor), blur (share)
    "zoom": Range(1),
    "blur": Range(0, 1),
    "noise": Range(0),
    "jitter": Range(0),
    "weight_decay": Range(0),
    "warmup_epochs": Range(0),
}
WHOLE_NUMBERS, NUMBERS = Range(1), Range(0, low_open=True)


def checked_option(model: str, name: str, value, default):
    """`value` for builder option `name`, of the default's type and in the option's range; a ModelError saying
    what is accepted otherwise."""
    def refuse(accepted: str):
        example = json.dumps(list(default)) if isinstance(default, tuple) else str(default).lower()
        return ModelError(f"option {name}={json.dumps(value)} of model '{model}' must be {accepted}. "
                          f"Use e.g. --option {name}={example}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if isinstance(default, (int, float)):
        whole = isinstance(default, int)
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise refuse("a whole number" if whole else "a number")
        allowed = OPTION_RANGES.get(name, WHOLE_NUMBERS if whole else NUMBERS)
        if value not in allowed:
            raise refuse(f"{'a whole number' if whole else 'a number'} {allowed}")
        return value if whole else float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise refuse("a word")
        return value
    if isinstance(default, tuple):
        if (not isinstance(value, (list, tuple)) or not value
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
            raise refuse("a list of whole numbers of at least 1")
        return tuple(value)
    return value


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable
    world: str
    capabilities: tuple[str, ...]
    description: str
    loader: Callable | None = None     # folder of parts -> model, for models not saved as one .keras file

    @property
    def defaults(self) -> dict:
        """The builder's keyword arguments and their default values."""
        return {name: p.default for name, p in inspect.signature(self.builder).parameters.items()
                if p.default is not inspect.Parameter.empty}


_REGISTRY: dict[str, Entry] = {}


def register(name: str, *, world: str, capabilities: tuple[str, ...], loader: Callable | None = None) -> Callable:
    """Registers a builder under `name`; its docstring's first line is the model's description.

    Models that are not one Keras model (statistical and composite ones) pass `loader`, which reads back
    the folder of parts their `save(folder)` wrote.
    """
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown or world not in WORLDS:
        raise ValueError(f"model '{name}': unknown capability {sorted(unknown)} or world '{world}'")

    def decorate(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        description = (inspect.getdoc(builder) or "").splitlines()[0] if builder.__doc__ else ""
        _REGISTRY[name] = Entry(name, builder, world, tuple(capabilities), description, loader)
        return builder

    return decorate


def list_models(capability: str | None = None, world: str | None = None) -> list[str]:
    """Registered model names, optionally only those offering `capability` and those of image world `world`."""
    return sorted(n for n, e in _REGISTRY.items()
                  if (capability is None or capability in e.capabilities) and world in (None, e.world))


def get_entry(name: str) -> Entry:
    if name not in _REGISTRY:
        raise ModelError(f"unknown model '{name}'. Choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def capabilities(model) -> tuple[str, ...]:
    """What a model made or loaded by the zoo offers: its entry's capabilities."""
    return get_entry(model.zoo_name).capabilities


def models_offering(*needed: str, every: bool = False, world: str | None = None) -> str:
    """The registered models (of image world `world`) that offer one of `needed`, or with every=True all of them,
    as a/b/c for error messages."""
    offers = all if every else any
    return "/".join(name for name in list_models(world=world)
                    if offers(capability in _REGISTRY[name].capabilities for capability in needed))


def require(model, *needed: str, refusal: str, advice: str = "Pass a run of {models}", every: bool = False,
            same_world: bool = False) -> str:
    """The first capability of `needed` that `model` offers (with every=True: if it offers all of them); otherwise
    a ModelError `refusal. advice`, {models} in `advice` naming the models that would do (of `model`'s image world
    with same_world=True)."""
    offered = [capability for capability in needed if capability in capabilities(model)]
    if offered and (not every or len(offered) == len(needed)):
        return offered[0]
    world = get_entry(model.zoo_name).world if same_world else None
    raise ModelError(f"{refusal}. {advice.format(models=models_offering(*needed, every=every, world=world))}")


def create(name: str, **overrides):
    """Builds model `name` with its defaults, replaced by `overrides`."""
    entry = get_entry(name)
    unknown = set(overrides) - set(entry.defaults)
    if unknown:
        raise ModelError(f"model '{name}' has no option {', '.join(sorted(unknown))}. "
                         f"Its options are: {', '.join(entry.defaults)}")
    checked = {key: checked_option(name, key, value, entry.defaults[key]) for key, value in overrides.items()}
    model = entry.builder(**checked)
    model.zoo_name = name
    return model


def load_keras(path: Path):
    """A .keras file in Keras' safe mode, with one ModelError for a damaged file or a refused one."""
    import keras

    try:
        return keras.saving.load_model(path)
    except Exception as error:      # noqa: BLE001 - Keras raises ValueError, OSError, TypeError, zip errors
        reason = " ".join(str(error).split())
        if "safe_mode" in reason:
            raise ModelError(f"{path} was refused: it holds Python code (a Lambda layer or a function) that Keras "
                             "does not run when loading in safe mode. Load only runs you trust; retrain it "
                             "without the Lambda layer") from None
        raise ModelError(f"{path} cannot be loaded as a Keras model ({reason[:200]}). Train the run again") from None


def load(run_dir: str | Path, trust_pickle: bool = False):
    """The trained model of a run folder written by train.py (a path, or `preset:NAME` for one shipped in presets/:
    core.runs), ready to use: `model.keras`, or the folder of parts `model/` read by the entry's loader.
    trust_pickle=True also reads parts saved as pickles by older versions (which can run code: only for runs you
    trust)."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file() or folder.saved_model() is None:
        raise ModelError(f"'{run_dir}' is not a finished run folder (no config.json, or no model.keras / model/). "
                         "Pass a folder written by train.py")
    name = folder.read_config()["model"]
    entry = get_entry(name)
    model = entry.loader(folder.parts, trust_pickle=trust_pickle) if entry.loader else load_keras(folder.model)
    model.zoo_name = name
    return model


class RunOnImages:
    """A trained run used as a function of images (a judge's classify, a feature space's encode): the first of
    `needed` that its model offers, on images resized to the size the run was trained at. `flag` and `refusal`
    word the error for a run that offers none of them."""

    def __init__(self, run_dir: str | Path, *needed: str, flag: str, refusal: str):
        self.run, self.model = str(run_dir), load(run_dir)
        capability = require(self.model, *needed, refusal=f"{flag} run '{run_dir}' is a {self.model.zoo_name}, "
                                                         f"{refusal}")
        self.method = getattr(self.model, capability)
        self.config = RunFolder(run_dir).read_config()
        self.size = self.config["image_size"]

    def __call__(self, images):
        return self.method(resize_batch(images, self.size))
