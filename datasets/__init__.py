"""Dataset sources by name, and `load`, the one way the CLIs and notebooks open a source.

Every source module exposes `open_source(data_dir, image_size, seed) -> Source`; `load` adds the
options common to all of them (`classes`, `limit`) on top, so each source stays about its own format.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np

from core.errors import DataError
from datasets.source import Source, Subset

# name -> (module, needs --data-dir, one-line description)
SOURCES: dict[str, tuple[str, bool, str]] = {
    "synthetic-galaxies": ("datasets.synthetic_galaxies", False,
                           "built-in rendered galaxies, 5 Galaxy10-style classes (default)"),
    "galaxy10": ("datasets.galaxy10", True, "Galaxy10 DECals / SDSS HDF5 file (--data-dir FILE)"),
    "hubble": ("datasets.hubble", False, "real cut-outs from the Hubble Deep Field (scikit-image), unlabeled"),
    "folder": ("datasets.folder", True, "a folder of PNG/JPEG images; sub-folder names are classes"),
    "star-fields": ("datasets.star_fields", False, "built-in rendered 1000×1000 star fields (cosmology), unlabeled"),
    "cil": ("datasets.cil", True, "ETH CIL cosmology folder (--data-dir DIR): its real labeled fields"),
}
TFDS_PREFIX = "tfds:"       # tfds:NAME[/CONFIG]: the train split of a prepared TFDS dataset in --data-dir


def list_datasets() -> dict[str, str]:
    """Dataset names with their one-line descriptions."""
    return {**{name: description for name, (_, _, description) in SOURCES.items()},
            f"{TFDS_PREFIX}NAME": "the train split of a prepared TFDS image dataset (--data-dir: the TFDS folder)"}


def load(name: str, *, data_dir: str | None = None, image_size: int = 64, seed: int = 0,
         classes: Sequence[str] | str | None = None, limit: int | None = None, scored: bool = False) -> Source:
    """Opens source `name`, keeps only `classes` (names or indices, in that order) and the first `limit` rows.

    scored=True opens the dataset's scored images instead (`open_scored`: images with a similarity score 0-8
    in `metadata(...)["score"]`, what the scorers learn from); only star-fields and cil have them.
    """
    if limit is not None and limit <= 0:
        raise DataError(f"--limit must be a positive number of images, got {limit}. Leave it out to use all")
    if name.startswith(TFDS_PREFIX) and not scored:
        from datasets.tfds.source import open_tfds

        source = open_tfds(name[len(TFDS_PREFIX):], data_dir)
    else:
        source = open_named(name, data_dir, image_size, seed, scored)
    if classes:
        source = select_classes(source, classes)
    if limit is not None and limit < len(source):
        source = Subset(source, np.arange(limit))
    if len(source) == 0:
        raise DataError(f"dataset '{name}' has no images. Check --data-dir, --classes and --limit")
    return source


def open_named(name: str, data_dir: str | None, image_size: int, seed: int, scored: bool) -> Source:
    """One of SOURCES, by its module's open_source (open_scored for scored=True)."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset '{name}'. Choose one of: {', '.join(SOURCES)}, or {TFDS_PREFIX}NAME")
    module_name, needs_dir, _ = SOURCES[name]
    if needs_dir and not data_dir:
        raise DataError(f"dataset '{name}' needs --data-dir. Point it at the file or folder to read")
    module = importlib.import_module(module_name)
    if scored and not hasattr(module, "open_scored"):
        raise DataError(f"dataset '{name}' has no scored images to learn scores from. "
                        "Use --dataset star-fields (built-in) or --dataset cil --data-dir DIR")
    opener = module.open_scored if scored else module.open_source
    return opener(data_dir=data_dir, image_size=image_size, seed=seed)


def select_classes(source: Source, classes: Sequence[str] | str) -> Source:
    """Keeps the rows whose class is in `classes` and renumbers labels 0..k-1 in the order given."""
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if not source.labeled:
        raise DataError(f"dataset '{source.name}' is unlabeled, so --classes cannot select from it. Drop --classes")
    chosen: list[int] = []
    for item in classes:
        if item.isdigit() and int(item) < len(source.class_names):
            chosen.append(int(item))
        elif item in source.class_names:
            chosen.append(source.class_names.index(item))
        else:
            raise DataError(f"unknown class '{item}' in --classes. Use indices 0-{len(source.class_names) - 1} "
                            f"or names: {', '.join(source.class_names)}")
    if len(set(chosen)) != len(chosen):
        raise DataError("--classes names a class twice. List each class once")
    indices = np.flatnonzero(np.isin(source.labels(), chosen))
    return Subset(source, indices, class_names=tuple(source.class_names[c] for c in chosen),
                  label_map={c: i for i, c in enumerate(chosen)})


__all__ = ["DataError", "Source", "Subset", "SOURCES", "list_datasets", "load", "select_classes"]
