"""A query and its answer: the query image (the Milky Way by default, or an image file) prepared like the gallery,
its k nearest gallery images, and those as table rows, neighbours.csv and neighbours.png (`evaluate.py neighbours`).

The query goes through the same crop and resize as the gallery, so distances compare like with like; the Milky
Way is also observed like the gallery (milky_way.py), and the mean of its views' embeddings is the query.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.files import save_figure, write_atomic
from core.tables import text_table
from datasets.pipeline import make_dataset, prepare_image, to_numpy
from datasets.source import ArraySource, Source
from search.embedding import GallerySpec, embedder, open_run
from search.gallery import Gallery, check_k
from search.index import ShardedIndex, open_gallery
from search.milky_way import SAMPLE, milky_way_views, render_size

MILKY_WAY = "milky-way"
FIGURE_COLUMNS = 6


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
    its renders observed like the gallery (milky_way.py), whose embeddings `find_neighbours` averages."""
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


def neighbour_rows(vector: np.ndarray, gallery: Gallery | ShardedIndex, source: Source, k: int) -> list[dict]:
    """The k gallery images nearest to the embedded query `vector` (1, d), nearest first: rank, dataset index,
    distance and `gallery_details` of each."""
    distances, found = gallery.search(vector, k)
    return [{"rank": rank, "index": int(row), "distance": float(distance), **details}
            for rank, (row, distance, details) in enumerate(
                zip(found[0], distances[0], gallery_details(source, gallery.labels, found[0])), start=1)]


def find_neighbours(query: np.ndarray, gallery: Gallery | ShardedIndex, source: Source, spec: GallerySpec, model,
                    k: int) -> Neighbours:
    """The k gallery images nearest to `query` (n, S, S, C): one image, or n views of one galaxy whose embeddings
    are averaged; with their table rows and prepared images."""
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
    return text_table(columns, [[f"{row[c]:.5g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
                                for row in rows])


def nearest(query: str = MILKY_WAY, k: int = 10, run_dir: str | Path | None = None, embedding: str | None = None,
            index_path: str | Path | None = None, out_dir: str | Path | None = None, **spec_overrides) -> Neighbours:
    """The whole search: the run's model and data (`spec_overrides` as in `gallery_spec`), the gallery (from or
    to `index_path`), the query's k nearest images, and neighbours.csv / neighbours.png in `out_dir` if given."""
    run = open_run(run_dir, embedding, **spec_overrides)
    source = run.spec.open()
    check_k(k, len(source))
    query_images = search_query(query, run.spec, source)
    gallery = open_gallery(source, run.spec, run.model, run.embedding, run_dir, index_path)
    result = find_neighbours(query_images, gallery, source, run.spec, run.model, k)
    if out_dir is not None:
        write_neighbours(out_dir, result, query_title(query))
    return result


def query_title(query: str) -> str:
    return "Milky Way (rendered)" if query == MILKY_WAY else Path(query).name
