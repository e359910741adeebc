"""The model registry: one decorator and three functions (timm's register_model / create_model / list_models).

An entry is a builder function; its keyword defaults are the model's defaults, in one place. The entry also
declares the image world it belongs to and the capabilities its model offers, so callers ask the model what
it can do instead of checking its name.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelError
from core.runs import RunFolder
from core.worlds import WORLDS

CAPABILITIES = ("classify", "encode", "decode", "reconstruct", "generate", "score")

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


def trains_on(model, backend: str) -> bool:
    """Whether `model` can train with Keras backend `backend`. Models whose train step is written for some
    backends only (the GANs' tf.GradientTape) list them in a `train_backends` attribute; the rest train on any."""
    return backend in getattr(model, "train_backends", (backend,))


def get_entry(name: str) -> Entry:
    if name not in _REGISTRY:
        raise ModelError(f"unknown model '{name}'. Choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def create(name: str, **overrides):
    """Builds model `name` with its defaults, replaced by `overrides`."""
    entry = get_entry(name)
    unknown = set(overrides) - set(entry.defaults)
    if unknown:
        raise ModelError(f"model '{name}' has no option {', '.join(sorted(unknown))}. "
                         f"Its options are: {', '.join(entry.defaults)}")
    model = entry.builder(**overrides)
    model.zoo_name = name
    return model


def load(run_dir: str | Path):
    """The trained model of a run folder written by train.py, ready to use: `model.keras`, or the folder of
    parts `model/` read by the entry's loader."""
    import keras

    folder = RunFolder(run_dir)
    if not folder.config.is_file() or folder.saved_model() is None:
        raise ModelError(f"'{run_dir}' is not a finished run folder (no config.json, or no model.keras / model/). "
                         "Pass a folder written by train.py")
    name = folder.read_config()["model"]
    entry = get_entry(name)
    model = entry.loader(folder.parts) if entry.loader else keras.saving.load_model(folder.model)
    model.zoo_name = name
    return model
