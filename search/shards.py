"""Embedding a whole survey on Ray: `evaluate.py embed` writes a gallery's vectors as Parquet shards.

A gallery of tens of millions of galaxies neither fits one process's memory nor one afternoon of one core, so the
source is cut into shards of consecutive rows (`default_shard_rows`) and a pool of Ray workers embeds them (Ray Data
`map_batches` with a callable class: each worker opens the source and loads the model once). A worker writes its
shard itself, under a temporary name renamed into place, so a killed command leaves only whole shards and a rerun
embeds just the missing ones. Each shard holds, per image: `row` (its position in the gallery, what a search
returns), `dataset_index` (its row in the dataset's own file, before --classes/--limit), `label`, the source's
metadata columns (ra/dec/redshift, path, ...) and `embedding`. manifest.json says what the shards were embedded
from; a rerun against another run or other data is refused.

The same code runs on a laptop (a local Ray started here) and on a cluster (`--address` or RAY_ADDRESS); there
the repository, the run, the data and EMB/ must be at the same paths on every node (a shared filesystem).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

import zoo
from core.errors import DataError, ModelError
from core.files import make_folder, writable, write_atomic, write_json
from core.processes import JOIN_WAIT_S, exit_unless_done_in, reap_children_at_exit, wait_for_address
from core.runs import RunFolder
from core.streams import native_output_held
from datasets.source import Source, Subset
from search.embedding import GallerySpec, embed_source, embedder, open_run
from search.gallery import gallery_info

EMBED_BATCH = 256           # images per model call, as in evaluate.py neighbours
MAX_SHARD_ROWS = 4096       # images per shard at most (a file per 4,096 galaxies: 18,500 files for 76M)
MIN_SHARDS = 64             # shards at least, when there are enough images: workers finish together
MANIFEST = "manifest.json"
SHARD_COLUMNS = ("row", "label", "embedding")     # what an index reads from every shard
WRITE_AGAIN = "Delete it and rerun the same 'evaluate.py embed' command to write it again"


def default_shard_rows(n: int) -> int:
    """Rows per shard for n images: a multiple of the embedding batch (so that shards batch like one process),
    small enough for MIN_SHARDS shards, at most MAX_SHARD_ROWS. It depends on n alone, so reruns agree."""
    return min(MAX_SHARD_ROWS, EMBED_BATCH * max(1, math.ceil(n / MIN_SHARDS / EMBED_BATCH)))


def shard_path(folder: str | Path, shard: int) -> Path:
    return Path(folder) / f"shard-{shard:05d}.parquet"


def model_sha256(run_dir: str | Path | None) -> str | None:
    """A hash of the run's saved model (model.keras, or every file of a model of parts), None without a run."""
    if run_dir is None:
        return None
    saved = RunFolder(run_dir).saved_model()
    files = sorted(p for p in saved.rglob("*") if p.is_file()) if saved.is_dir() else [saved]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(saved.parent).as_posix().encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_rows(source: Source, rows: np.ndarray) -> np.ndarray:
    """Gallery rows as rows of the dataset's own file, through the --classes / --limit views on it."""
    while isinstance(source, Subset):
        rows, source = source.indices[rows], source.base
    return np.asarray(rows, np.int64)


def vectors_table(columns: dict[str, np.ndarray], vectors: np.ndarray) -> pa.Table:
    """A shard: the per-row `columns`, then `embedding`, a fixed-size list of float32 per row."""
    table = pa.table({name: pa.array(values) for name, values in columns.items()})
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
    return table.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))


def shard_table(source: Source, start: int, vectors: np.ndarray, labels: np.ndarray) -> pa.Table:
    """One shard of `source` from row `start`: row, dataset_index, label, the source's metadata, embedding."""
    rows = np.arange(start, start + len(vectors), dtype=np.int64)
    return vectors_table({"row": rows, "dataset_index": dataset_rows(source, rows),
                          "label": np.asarray(labels, np.int64), **source.metadata(rows)}, vectors)


def write_shard(path: Path, table: pa.Table) -> Path:
    return write_atomic(path, lambda temporary: pq.write_table(table, temporary))


def shard_vectors(table: pa.Table) -> np.ndarray:
    """The embedding column of a shard as a float32 (n, d) array."""
    column = table.column("embedding").combine_chunks()
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)


class ShardEmbedder:
    """A Ray Data worker: opens the source and loads the model once, then embeds and writes whole shards."""

    def __init__(self, run_dir: str | None, spec: GallerySpec, embedding: str, folder: str, shard_rows: int):
        import ray
        import tensorflow as tf

        cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        tf.config.threading.set_intra_op_parallelism_threads(cpus)  # one worker per core, not every worker on all
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
        self.spec, self.folder, self.shard_rows = spec, folder, shard_rows
        self.embed = embedder(zoo.load(run_dir) if run_dir is not None else None, embedding)
        self.source = spec.open()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embeds and writes the shards of `batch`; a bad image comes back as an `error` message, not raised,
        since Ray would hand the command its own exception without the project's one-line message."""
        written, errors = [], []
        for shard in batch["shard"]:
            start = int(shard) * self.shard_rows
            rows = Subset(self.source, np.arange(start, min(start + self.shard_rows, len(self.source))))
            try:
                vectors, labels = embed_source(rows, {"embedding": self.embed}, self.spec, batch_size=EMBED_BATCH,
                                               progress=False)
            except (DataError, ModelError) as error:
                written.append(0)
                errors.append(str(error))
                continue
            write_shard(shard_path(self.folder, int(shard)), shard_table(self.source, start, vectors["embedding"],
                                                                         labels))
            written.append(len(rows))
            errors.append("")
        return {"shard": batch["shard"], "rows": np.array(written, np.int64), "error": np.array(errors)}


def connect(address: str | None = None, workers: int | None = None) -> int:
    """Joins the Ray cluster at `address` (None: RAY_ADDRESS, else a new local one), unless this process already
    has; returns the workers to use: `workers`, or one per CPU of the cluster, checked to fit it.

    A cluster address must answer within JOIN_WAIT_S (Ray alone retries forever); a local Ray's processes are
    killed when this command ends, however it ends."""
    import ray

    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS")
        what_to_do = "Check --address (host:port of 'ray start --head'), or leave it out for a local Ray"
        if target is None or target == "local":
            reap_children_at_exit()
        elif target.rpartition(":")[2].isdigit():
            try:
                wait_for_address(target.removeprefix("ray://"), JOIN_WAIT_S)
            except TimeoutError as reason:
                raise DataError(f"no Ray cluster answers at {target} after {JOIN_WAIT_S} s ({reason}). {what_to_do}"
                                ) from None
        os.environ.setdefault("RAY_worker_niceness", "0")  # a local Ray's workers at our priority (Ray's default: 15)
        try:
            with exit_unless_done_in(JOIN_WAIT_S, f"the Ray cluster at {target} did not let this command join "
                                                  f"within {JOIN_WAIT_S} s. {what_to_do}"):
                ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise DataError(f"cannot reach a Ray cluster at {address} ({' '.join(str(error).split())[:200]}). "
                            f"{what_to_do}") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if workers is not None and workers > cpus:
        raise DataError(f"--workers {workers} is more than the {cpus} CPUs of the Ray cluster. "
                        f"Use --workers {cpus} or fewer, or add nodes")
    return workers or max(1, cpus)


def embed_manifest(spec: GallerySpec, embedding: str, run_dir: str | Path | None, n: int, shard_rows: int) -> dict:
    """What the shards are embedded from: a rerun adds shards only when all of it is unchanged."""
    return {**gallery_info(spec, embedding, run_dir), "model_sha256": model_sha256(run_dir), "n": n,
            "shard_rows": shard_rows, "shards": math.ceil(n / shard_rows)}


def check_manifest(folder: Path, manifest: dict) -> None:
    """A folder that is new, empty, or holds shards of this very embedding (the same manifest); reads only."""
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not (folder / MANIFEST).exists():
        raise DataError(f"{folder} already holds files and no {MANIFEST}. Pass an empty or new --out folder")
    saved = read_manifest(folder)
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in manifest.items() if saved.get(key) != value]
    if changed:
        raise DataError(f"{folder} holds embeddings of another run or data ({', '.join(changed)}). "
                        "Delete it to embed again, or pass another --out")


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"embeddings folder {folder} does not exist. Write it first with "
                        f"'python evaluate.py embed --out {folder}'")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if not isinstance(manifest, dict) or not {"n", "shard_rows", "shards", "embedding"} <= set(manifest):
            raise ValueError("no n, shard_rows, shards and embedding")
    except (OSError, ValueError):
        raise DataError(f"{folder} is not a folder written by evaluate.py embed (no readable {MANIFEST}). "
                        "Pass the --out folder of an embed command") from None
    embed_again = f"Delete {folder} and embed it again with 'evaluate.py embed --out {folder}'"
    check_counts(folder / MANIFEST, manifest, ("n", "shard_rows", "shards"), embed_again)
    if manifest["shards"] != math.ceil(manifest["n"] / manifest["shard_rows"]):
        raise DataError(f"{folder / MANIFEST} gives {manifest['shards']} shards for n {manifest['n']} in shards of "
                        f"{manifest['shard_rows']} rows. {embed_again}")
    return manifest


def check_counts(path: Path, record: dict, keys: tuple[str, ...], what_to_do: str, least: int = 1) -> None:
    """A DataError naming the file unless each of `keys` in the JSON `record` read from `path` is a whole number
    of at least `least` (not text, true, or less)."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DataError(f"{path} gives {key} {json.dumps(value)}, not a whole number of at least {least}. "
                            f"{what_to_do}")


def open_embeddings(folder: str | Path) -> tuple[dict, list[Path]]:
    """The manifest and the shard files of a finished `embed`; a DataError for an interrupted one."""
    manifest = read_manifest(folder)
    shards = [shard_path(folder, shard) for shard in range(manifest["shards"])]
    present = sum(path.exists() for path in shards)
    if present < len(shards):
        raise DataError(f"{folder} holds {present} of {len(shards)} shards (an interrupted embed). "
                        "Rerun the same 'evaluate.py embed' command to finish it")
    return manifest, shards


def read_shard(read, path: Path, **options):
    """`read(path, **options)` (a pyarrow reader), a DataError naming the shard when it is not whole Parquet."""
    try:
        return read(path, **options)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"shard {path} cannot be read ({' '.join(str(error).split())[:200]}). {WRITE_AGAIN}"
                        ) from None


def read_columns(shards: list[Path], columns: list[str] | None):
    """(shard, table of `columns`) one shard at a time, so no more than a shard is in memory; a DataError naming
    a shard that cannot be read."""
    for path in shards:
        yield path, read_shard(pq.read_table, path, columns=columns)


def shards_dimension(shards: list[Path]) -> int:
    """The dimension of the shards' vectors, after reading every shard's schema (its footer, not its rows): a
    DataError naming a shard without the columns an index needs or with vectors of another dimension."""
    dimension = None
    for path in shards:
        schema = read_shard(pq.read_schema, path)
        missing = [name for name in SHARD_COLUMNS if name not in schema.names]
        if missing:
            raise DataError(f"shard {path} has no {' and no '.join(missing)} column. {WRITE_AGAIN}")
        vectors = schema.field("embedding").type
        if not pa.types.is_fixed_size_list(vectors) or vectors.value_type != pa.float32():
            raise DataError(f"shard {path} holds embeddings of type {vectors}, not fixed-size lists of float. "
                            f"{WRITE_AGAIN}")
        if dimension not in (None, vectors.list_size):
            raise DataError(f"shard {path} holds {vectors.list_size}-dimensional vectors, {shards[0]} "
                            f"{dimension}-dimensional ones. {WRITE_AGAIN}")
        dimension = vectors.list_size
    return dimension


def embed_shards(out: str | Path, run_dir: str | Path | None = None, embedding: str | None = None,
                 workers: int | None = None, address: str | None = None, shard_rows: int | None = None,
                 **spec_overrides) -> dict:
    """Embeds every image of the gallery (`spec_overrides` as in `gallery_spec`) into Parquet shards in `out` on
    a pool of Ray workers, skipping the shards already there; returns the manifest."""
    run = open_run(run_dir, embedding, **spec_overrides)
    spec, embedding = run.spec, run.embedding
    source = spec.open()
    folder = writable(out)
    shard_rows = shard_rows or default_shard_rows(len(source))
    manifest = embed_manifest(spec, embedding, run_dir, len(source), shard_rows)
    check_manifest(folder, manifest)
    missing = [shard for shard in range(manifest["shards"]) if not shard_path(folder, shard).exists()]
    if not missing:
        return manifest
    with native_output_held(2):  # Ray's C++ notes; our bar and errors still reach the terminal
        return run_embedders(folder, manifest, missing, source, spec, run_dir, embedding, workers, address)


def run_embedders(folder: Path, manifest: dict, missing: list[int], source: Source, spec: GallerySpec,
                  run_dir: str | Path | None, embedding: str, workers: int | None, address: str | None) -> dict:
    """Embeds the `missing` shards on a pool of Ray workers, one progress bar in images."""
    import ray

    shard_rows = manifest["shard_rows"]
    workers = min(connect(address, workers), len(missing))
    if not (folder / MANIFEST).exists():
        write_json(make_folder(folder) / MANIFEST, manifest)
    ray.data.DataContext.get_current().enable_progress_bars = False  # one bar of our own, in images
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its execution notes; a failure still raises
    shards = ray.data.from_items([{"shard": shard} for shard in missing], override_num_blocks=len(missing))
    written = shards.map_batches(
        ShardEmbedder, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs=dict(run_dir=None if run_dir is None else str(RunFolder(run_dir).root), spec=spec,
                                   embedding=embedding, folder=str(folder), shard_rows=shard_rows))
    remaining = len(source) - sum(min(shard_rows, len(source) - shard * shard_rows)
                                  for shard in range(manifest["shards"]) if shard not in missing)

    with tqdm(total=remaining, unit="img", desc=f"embedding {source.name} on {workers} Ray workers") as bar:
        for batch in written.iter_batches(batch_size=None, batch_format="numpy"):
            failed = [message for message in batch["error"] if message]
            if failed:
                raise DataError(failed[0])
            bar.update(int(batch["rows"].sum()))
    return manifest
