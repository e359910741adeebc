"""From a run to vectors: which images a gallery holds, how they are prepared, and how they become vectors.

An embedding turns prepared images (float32 NHWC in [0, 1]) into vectors: `latent` is the model's `encode`,
`scores` its `classify` probabilities, `pixels` the image itself, flattened. `open_run` is the one way a search
starts from a run folder: its model, its dataset options (or overrides of them), the embedding asked for or the
model's own, and that embedding's function.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

import datasets
import zoo
from core.errors import DataError, ModelError
from core.runs import load_config
from datasets.pipeline import data_errors, make_dataset, split_indices
from datasets.source import Source

EMBEDDINGS = ("latent", "scores", "pixels")
EMBEDDING_CAPABILITY = {"latent": "encode", "scores": "classify"}
MEANING = {"latent": "latent space", "scores": "class scores"}


@dataclass
class GallerySpec:
    """Which images a gallery holds and how they are prepared; a run's own data unless overridden."""

    dataset: str = "synthetic-galaxies"
    data_dir: str | None = None
    classes: str | None = None
    limit: int | None = None
    image_size: int = 64
    crop: float | None = None
    seed: int = 0

    def open(self) -> Source:
        return datasets.load(self.dataset, data_dir=self.data_dir, image_size=self.image_size, seed=self.seed,
                             classes=self.classes, limit=self.limit)


def gallery_spec(run_dir: str | Path | None = None, **overrides) -> GallerySpec:
    """The run's dataset options (or the defaults without a run), replaced by the overrides that are not None.

    The image size is the model's: a different one is refused rather than silently resized twice.
    """
    spec = GallerySpec()
    if run_dir is not None:
        config = load_config(run_dir)
        spec = GallerySpec(**{f.name: getattr(config, f.name) for f in fields(GallerySpec)})
        asked = overrides.get("image_size")
        if asked is not None and asked != spec.image_size:
            raise DataError(f"run '{run_dir}' was trained at {spec.image_size} px, got --image-size {asked}. "
                            "Leave --image-size out with --run")
    for name, value in overrides.items():
        if value is not None:
            setattr(spec, name, value)
    return spec


def default_embedding(model) -> str:
    """`latent` for a model that encodes, `scores` for a classifier, `pixels` without a model."""
    if model is None:
        return "pixels"
    capability = zoo.require(model, "encode", "classify", same_world=True,
                             refusal=f"model '{model.zoo_name}' has neither a latent space nor class scores",
                             advice="Use a run of {models}, or --embedding pixels without --run")
    return next(name for name, offered in EMBEDDING_CAPABILITY.items() if offered == capability)


def embedder(model, embedding: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of prepared images to float32 vectors (n, d)."""
    if embedding not in EMBEDDINGS:
        raise ModelError(f"unknown embedding '{embedding}'. Choose one of: {', '.join(EMBEDDINGS)}")
    if embedding == "pixels":
        return lambda images: np.asarray(images, np.float32).reshape(len(images), -1)
    if model is None:
        raise ModelError(f"--embedding {embedding} needs a trained model. Pass --run RUN_DIR, "
                         "or use --embedding pixels")
    others = [f"--embedding {name}" for name, needed in EMBEDDING_CAPABILITY.items()
              if needed in zoo.capabilities(model)]
    capability = zoo.require(model, EMBEDDING_CAPABILITY[embedding], same_world=True,
                             refusal=f"model '{model.zoo_name}' has no {MEANING[embedding]}",
                             advice=f"Use {others[0] if others else '--embedding pixels'} or a run of {{models}}")
    method = getattr(model, capability)
    return lambda images: np.asarray(method(images), np.float32).reshape(len(images), -1)


@dataclass
class OpenedRun:
    """A run opened for search: the gallery's options, the model (None without a run), the embedding and its
    function."""

    spec: GallerySpec
    model: object
    embedding: str
    embed: Callable[[np.ndarray], np.ndarray]


def open_run(run_dir: str | Path | None, embedding: str | None = None, **spec_overrides) -> OpenedRun:
    """The run's model and gallery options (`spec_overrides` as in `gallery_spec`), `embedding` or the model's
    default one, and its function; a model that cannot embed that way stops here, before any data is read."""
    spec = gallery_spec(run_dir, **spec_overrides)
    model = zoo.load(run_dir) if run_dir is not None else None
    embedding = embedding or default_embedding(model)
    return OpenedRun(spec, model, embedding, embedder(model, embedding))


def embed_source(source: Source, embedders: dict[str, Callable], spec: GallerySpec, split: str | None = None,
                 validation_fraction: float = 0.1, batch_size: int = 256, progress: bool = True
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Embeddings of every image of `source` (or of one split), one streamed pass for all `embedders`."""
    dataset = make_dataset(source, image_size=spec.image_size, crop=spec.crop, split=split,
                           validation_fraction=validation_fraction, seed=spec.seed, batch_size=batch_size,
                           cache=False)
    total = len(split_indices(len(source), split, validation_fraction, spec.seed))
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in embedders}
    labels = []
    with data_errors(), tqdm(total=total, unit="img", leave=False, desc=f"embedding {source.name}",
                             disable=not progress) as bar:
        for images, batch_labels in dataset.as_numpy_iterator():
            for name, embed in embedders.items():
                vectors[name].append(embed(images))
            labels.append(batch_labels)
            bar.update(len(images))
    return {name: np.concatenate(parts) for name, parts in vectors.items()}, np.concatenate(labels)
