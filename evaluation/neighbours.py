"""The galaxies nearest to a query image (the Milky Way by default), in a model's latent space, in a
classifier's class scores, or in raw pixels (the Milky Way seed's pixel-MSE baseline).

An embedding turns prepared images (float32 NHWC in [0, 1]) into vectors: `latent` is the model's `encode`,
`scores` its `classify` probabilities, `pixels` the image itself, flattened. A distance is the mean squared
difference per vector component, so the pixel distance is exactly the seed's pixel MSE and the latent distance
its "MSE in latent space". A gallery holds the embeddings of every image of a dataset and their FAISS index
(exact up to EXACT_LIMIT vectors, HNSW beyond); it is built once by streaming the dataset in batches and can be
saved to one .npz file, so later queries never touch the dataset's pixels again. The query goes through the
same crop and resize as the gallery, so distances compare like with like.
"""
from __future__ import annotations

import csv
import json
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

import datasets
import zoo
from core.errors import DataError, ModelError
from core.files import save_figure, write_atomic
from core.runs import RunFolder, load_config
from datasets.pipeline import data_errors, make_dataset, prepare_image, split_indices, to_numpy
from datasets.source import ArraySource, Source
from evaluation.index_kinds import EXACT_LIMIT
from evaluation.milky_way import SAMPLE, milky_way_views, render_size

EMBEDDINGS = ("latent", "scores", "pixels")
EMBEDDING_CAPABILITY = {"latent": "encode", "scores": "classify"}
HNSW_LINKS = 32                # graph neighbours per vector: recall vs memory
HNSW_SEARCH_DEPTH = 128        # candidates kept while searching: recall vs speed
MILKY_WAY = "milky-way"
FIGURE_COLUMNS = 6


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


def capabilities(model) -> tuple[str, ...]:
    return zoo.get_entry(model.zoo_name).capabilities


def models_like(model, *capabilities_needed: str) -> str:
    """The models of `model`'s image world that offer one of `capabilities_needed`, for error messages."""
    world = zoo.get_entry(model.zoo_name).world
    return "/".join(name for capability in capabilities_needed for name in zoo.list_models(capability, world))


def default_embedding(model) -> str:
    """`latent` for a model that encodes, `scores` for a classifier, `pixels` without a model."""
    if model is None:
        return "pixels"
    offered = [name for name, capability in EMBEDDING_CAPABILITY.items() if capability in capabilities(model)]
    if not offered:
        raise ModelError(f"model '{model.zoo_name}' has neither a latent space nor class scores. Use a run of "
                         f"{models_like(model, 'encode', 'classify')}, "
                         "or --embedding pixels without --run")
    return offered[0]


def embedder(model, embedding: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of prepared images to float32 vectors (n, d)."""
    if embedding not in EMBEDDINGS:
        raise ModelError(f"unknown embedding '{embedding}'. Choose one of: {', '.join(EMBEDDINGS)}")
    if embedding == "pixels":
        return lambda images: np.asarray(images, np.float32).reshape(len(images), -1)
    if model is None:
        raise ModelError(f"--embedding {embedding} needs a trained model. Pass --run RUN_DIR, "
                         "or use --embedding pixels")
    offered = capabilities(model)
    capability = EMBEDDING_CAPABILITY[embedding]
    if capability not in offered:
        meaning = {"latent": "latent space", "scores": "class scores"}[embedding]
        others = [f"--embedding {name}" for name, needed in EMBEDDING_CAPABILITY.items() if needed in offered]
        instead = others[0] if others else "--embedding pixels"
        raise ModelError(f"model '{model.zoo_name}' has no {meaning}. Use {instead} or a run of "
                         f"{models_like(model, capability)}")
    method = getattr(model, capability)
    return lambda images: np.asarray(method(images), np.float32).reshape(len(images), -1)


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


def check_k(k: int, gallery_size: int) -> None:
    if not 1 <= k <= gallery_size:
        raise DataError(f"--k must be between 1 and the {gallery_size} images in the gallery, got {k}. "
                        f"Use e.g. --k {min(10, gallery_size)}")


def build_index(embeddings: np.ndarray, exact_limit: int = EXACT_LIMIT) -> faiss.Index:
    """An exact L2 index, or an HNSW graph (approximate, sub-linear queries) past `exact_limit` vectors."""
    dimension = embeddings.shape[1]
    if len(embeddings) <= exact_limit:
        index = faiss.IndexFlatL2(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, HNSW_LINKS)
        index.hnsw.efSearch = HNSW_SEARCH_DEPTH
    index.add(np.ascontiguousarray(embeddings, np.float32))
    return index


@dataclass
class Gallery:
    """Embeddings of a dataset's images, their FAISS index, labels, and what they were built from (`info`)."""

    embeddings: np.ndarray
    labels: np.ndarray
    info: dict
    index: faiss.Index = field(repr=False)

    @classmethod
    def build(cls, embeddings: np.ndarray, labels: np.ndarray, info: dict, exact_limit: int = EXACT_LIMIT):
        return cls(embeddings, labels, info, build_index(embeddings, exact_limit))

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, gallery rows), both (n_queries, k), nearest first; distance = mean squared difference."""
        check_k(k, len(self))
        squared, rows = self.index.search(np.ascontiguousarray(vectors, np.float32), k)
        return np.maximum(squared, 0) / self.embeddings.shape[1], rows

    def metadata(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """No per-row columns: a .npz gallery keeps only vectors and labels (its source has the metadata)."""
        return {}

    def vector(self, row: int) -> np.ndarray:
        """Gallery row `row`'s own vector, (1, dimensions): a gallery galaxy as a query, without embedding it."""
        return self.embeddings[row:row + 1]

    def save(self, path: str | Path) -> Path:
        """One .npz file: embeddings, labels, the serialised FAISS index and `info` as JSON."""
        def write(temporary: str) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, embeddings=self.embeddings, labels=self.labels,
                         index=faiss.serialize_index(self.index), info=np.array(json.dumps(self.info)))

        return write_atomic(path, write)

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """A gallery saved by `save`; a DataError for any other file (truncated, a plain .npy, bad metadata)."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                info = json.loads(str(saved["info"]))
                gallery = cls(saved["embeddings"], saved["labels"], info, faiss.deserialize_index(saved["index"]))
            if not isinstance(info, dict) or gallery.embeddings.ndim != 2 or gallery.index.ntotal != len(gallery):
                raise ValueError("its metadata does not describe its vectors")
            return gallery
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, zipfile.BadZipFile) as error:
            raise DataError(f"index file {path} is not an index written by evaluate.py neighbours "
                            f"({type(error).__name__}). Delete it to rebuild it, or pass another --index") from None


def gallery_info(spec: GallerySpec, embedding: str, run_dir: str | Path | None) -> dict:
    """What a gallery depends on; a saved index is reused only when all of it matches."""
    info = {"embedding": embedding, **{f.name: getattr(spec, f.name) for f in fields(GallerySpec)},
            "run": None, "model_modified_ns": None}
    if run_dir is not None:
        folder = RunFolder(run_dir)
        info["run"] = os.path.realpath(folder.root)
        info["model_modified_ns"] = folder.saved_model().stat().st_mtime_ns
    return info


def open_gallery(source: Source, spec: GallerySpec, model, embedding: str, run_dir: str | Path | None = None,
                 index_path: str | Path | None = None, exact_limit: int = EXACT_LIMIT) -> Gallery:
    """The gallery of `source`: loaded from `index_path` when that file (or IDX/ folder of `evaluate.py index`)
    exists, else embedded (and saved there as .npz)."""
    info = gallery_info(spec, embedding, run_dir)
    if index_path is not None and Path(index_path).exists():
        from evaluation.index import load_index  # evaluation.index builds on this module

        gallery = load_index(index_path)
        saved = {key: gallery.info.get(key) for key in info}
        if saved != info or len(gallery) != len(source):
            changed = ", ".join(f"{key} {saved[key]!r} -> {info[key]!r}" for key in info if saved[key] != info[key])
            raise DataError(f"index {index_path} was built for another gallery ({changed or 'a different size'}). "
                            "Delete it to rebuild, or pass another --index")
        return gallery
    vectors, labels = embed_source(source, {embedding: embedder(model, embedding)}, spec)
    gallery = Gallery.build(vectors[embedding], labels, {**info, "n": len(labels)}, exact_limit)
    if index_path is not None:
        gallery.save(index_path)
    return gallery


def read_prepared(source: Source, rows: np.ndarray, spec: GallerySpec) -> np.ndarray:
    """The images at `rows`, prepared exactly like the gallery. Read one by one (a block read would also render
    or decode every row in between), then prepared in one pass when their sizes agree."""
    images = [np.asarray(source.read(int(row), int(row) + 1)[0][0]) for row in rows]
    if len({image.shape for image in images}) > 1:
        return np.concatenate([prepare_image(image, spec.image_size, spec.crop) for image in images])
    return to_numpy(make_dataset(ArraySource(np.stack(images)), image_size=spec.image_size, crop=spec.crop,
                                 batch_size=len(images), cache=False))[0]


def milky_way_image(image_size: int, crop: float | None = None) -> np.ndarray:
    """The built-in Milky Way (a rendered face-on SBbc, datasets.synthetic_galaxies.milky_way), uint8.

    With a crop it is rendered larger, so that after the gallery's crop it fills the frame as a synthetic
    galaxy of `image_size` px does.
    """
    from datasets.synthetic_galaxies import milky_way

    return milky_way(render_size(image_size, crop))


def load_query(query: str, spec: GallerySpec, channels: int = 3) -> np.ndarray:
    """The query (`milky-way` or an image file) prepared like the gallery: float32 (1, S, S, channels)."""
    if query == MILKY_WAY:
        image = milky_way_image(spec.image_size, spec.crop)
    else:
        from datasets.folder import decode_image

        path = Path(query).expanduser()
        if not path.is_file():
            raise DataError(f"query image {query} does not exist. Pass --query {MILKY_WAY} or a PNG/JPEG file")
        image = decode_image(path)
    if channels == 1:
        import cv2

        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    return prepare_image(image, spec.image_size, spec.crop)


def search_query(query: str, spec: GallerySpec, source: Source) -> np.ndarray:
    """What a search embeds for `query`: an image file prepared like the gallery (1, S, S, C), or for the Milky Way
    its renders observed like the gallery (evaluation/milky_way.py), whose embeddings `find_neighbours` averages."""
    if query != MILKY_WAY:
        return load_query(query, spec, source.channels)
    rows = np.unique(np.linspace(0, len(source) - 1, min(SAMPLE, len(source))).astype(np.int64))
    return milky_way_views(read_prepared(source, rows, spec), spec.image_size, spec.crop)


@dataclass
class Neighbours:
    """The answer to one query: the prepared query, its k nearest images, and one table row per neighbour."""

    query: np.ndarray
    images: np.ndarray
    rows: list[dict]
    gallery_size: int
    seconds: dict       # "embed": the query through the model, "search": the FAISS look-up


def gallery_details(source: Source, labels: np.ndarray, rows: np.ndarray) -> list[dict]:
    """Label, class name and the source's metadata (ra/dec/redshift, path, ...) of each gallery row in `rows`."""
    metadata = source.metadata(rows)
    return [{"label": int(labels[row]), "class_name": source.class_names[labels[row]] if labels[row] >= 0 else "",
             **{key: column[i].item() for key, column in metadata.items()}} for i, row in enumerate(rows)]


def neighbour_rows(vector: np.ndarray, gallery: Gallery, source: Source, k: int) -> list[dict]:
    """The k gallery images nearest to the embedded query `vector` (1, d), nearest first: rank, dataset index,
    distance and `gallery_details` of each."""
    distances, found = gallery.search(vector, k)
    return [{"rank": rank, "index": int(row), "distance": float(distance), **details}
            for rank, (row, distance, details) in enumerate(
                zip(found[0], distances[0], gallery_details(source, gallery.labels, found[0])), start=1)]


def find_neighbours(query: np.ndarray, gallery: Gallery, source: Source, spec: GallerySpec, model, k: int
                    ) -> Neighbours:
    """The k gallery images nearest to `query` (n, S, S, C): one image, or n views of one galaxy whose embeddings
    are averaged; with their table rows and prepared images."""
    import time

    started = time.perf_counter()
    vector = embedder(model, gallery.info["embedding"])(query).mean(axis=0, keepdims=True)
    embedded = time.perf_counter()
    rows = neighbour_rows(vector, gallery, source, k)
    seconds = {"embed": embedded - started, "search": time.perf_counter() - embedded}
    found = np.array([row["index"] for row in rows])
    return Neighbours(query, read_prepared(source, found, spec), rows, len(gallery), seconds)


def neighbours_figure(result: Neighbours, query_name: str):
    """The query, then its neighbours nearest first, each titled with rank, distance and class."""
    import matplotlib.pyplot as plt

    panels = [(result.query[0], query_name)] + [
        (image, f"#{row['rank']}  d={row['distance']:.3g}\n{row['class_name'] or 'index ' + str(row['index'])}")
        for image, row in zip(result.images, result.rows)]
    columns = min(FIGURE_COLUMNS, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(1.7 * columns, 1.95 * lines), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, (image, title) in zip(axes.flat, panels):
        axis.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
        axis.set_title(title, fontsize=7)
    axes.flat[0].set_title(query_name, fontsize=7, fontweight="bold")
    figure.tight_layout()
    return figure


def write_neighbours(out_dir: str | Path, result: Neighbours, query_name: str) -> tuple[Path, Path]:
    """neighbours.csv (one row per neighbour) and neighbours.png (the query and its neighbours)."""
    out_dir = Path(out_dir)

    def write_csv(temporary: str) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(result.rows[0]))
            writer.writeheader()
            writer.writerows(result.rows)

    table = write_atomic(out_dir / "neighbours.csv", write_csv)
    return table, save_figure(out_dir / "neighbours.png", neighbours_figure(result, query_name))


def format_table(rows: list[dict]) -> str:
    """The neighbour rows as aligned text columns."""
    columns = list(rows[0])
    cells = [[f"{row[c]:.5g}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def nearest(query: str = MILKY_WAY, k: int = 10, run_dir: str | Path | None = None, embedding: str | None = None,
            index_path: str | Path | None = None, out_dir: str | Path | None = None, **spec_overrides) -> Neighbours:
    """The whole search: the run's model and data (`spec_overrides` as in `gallery_spec`), the gallery (from or
    to `index_path`), the query's k nearest images, and neighbours.csv / neighbours.png in `out_dir` if given."""
    spec = gallery_spec(run_dir, **spec_overrides)
    model = zoo.load(run_dir) if run_dir is not None else None
    embedding = embedding or default_embedding(model)
    embedder(model, embedding)  # a model that cannot embed this way stops here, before any data is read
    source = spec.open()
    check_k(k, len(source))
    query_images = search_query(query, spec, source)
    gallery = open_gallery(source, spec, model, embedding, run_dir, index_path)
    result = find_neighbours(query_images, gallery, source, spec, model, k)
    if out_dir is not None:
        write_neighbours(out_dir, result, query_title(query))
    return result


def query_title(query: str) -> str:
    return "Milky Way (rendered)" if query == MILKY_WAY else Path(query).name
