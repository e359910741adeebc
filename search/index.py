"""Survey-scale search: `evaluate.py index` turns the Parquet shards of `evaluate.py embed` into a FAISS index
folder, `load_index` opens any index (that folder, its files checked against its index.json once, or a .npz
gallery of `evaluate.py neighbours --index`), and `open_gallery` gives a search its gallery: a saved index, or
the dataset embedded then and there.

Up to an exact limit the index is exact (a flat L2 scan). Past it, an IVF index: k-means cells trained on a
sample, each group of shards added to a copy of the trained index by a Ray task, and the parts merged.
`ivf-flat` merges them on disk (FAISS OnDiskInvertedLists, `faiss.contrib.ondisk.merge_ondisk`), so its lists
are a file that queries memory-map. `ivf-pq` (auto's choice for the largest galleries) keeps 4-bit PQ codes (one
byte per 4 float32 components, 16× smaller) in memory, laid out for FAISS' fast-scan SIMD kernels, and re-ranks
RERANK_FACTOR × k candidates by their exact distance, read from a memory-mapped copy of the vectors; its cells
are trained by two-level k-means and its nprobe is the smallest that reaches RECALL_TARGET on HELD_OUT gallery
vectors. Every choice is recorded in index.json.

IDX/ holds index.json, index.faiss (+ lists.ivfdata for ivf-flat, and for ivf-pq folders written before
fast-scan), labels.npy, rows.parquet (dataset_index and the source's metadata per row) and, for re-ranking,
vectors.npy.
"""
from __future__ import annotations

import json
import math
import time
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DataError
from core.files import writable, write_atomic, write_json
from core.streams import native_output_held
from datasets.source import Source
from search.embedding import GallerySpec, embed_source, embedder
from search.gallery import (
    EXACT_LIMIT,
    HNSW_LINKS,
    HNSW_SEARCH_DEPTH,
    KINDS,
    Gallery,
    check_k,
    gallery_info,
    new_index,
)
from search.shards import (
    check_counts,
    connect,
    open_embeddings,
    read_columns,
    shard_vectors,
    shards_dimension,
)

RERANK_FACTOR = 32          # ivf-pq: candidates re-ranked exactly per neighbour asked (4-bit codes rank coarsely)
RECALL_TARGET = 0.96        # ivf-pq: recall@10 its nprobe must reach on held-out gallery vectors (0.95 + a margin
HELD_OUT = 500              # for fresh queries); that many gallery vectors, each searched for its neighbours but itself
PART_ROWS = 1_000_000       # at most this many vectors per Ray task adding shards (its part is held in memory)
IVF_FLAT_LIMIT = 2_000_000  # auto: more vectors than this get PQ codes (ivf-flat's lists: 4 bytes a component)
MAX_CELLS = 65_536
INFO = "index.json"


def index_parameters(n: int, dimension: int, kind: str = "auto", exact_limit: int = EXACT_LIMIT,
                     rerank: bool = True) -> dict:
    """The index kind and its parameters for n vectors. auto: exact up to `exact_limit`, ivf-flat up to
    IVF_FLAT_LIMIT, then ivf-pq, whose 16× smaller codes, scanned by SIMD, let a query scan many more cells in
    less time. nlist ≈ √N cells (a power of two), 64 training vectors per cell; nprobe = nlist / 32 of them
    searched (16 to 64) for ivf-flat; for ivf-pq a first guess (nlist / 16, 16 to 256) that the build replaces by
    the one measured to reach RECALL_TARGET. PQ: one 4-bit code per pair of components (fast-scan)."""
    if kind not in KINDS:
        raise DataError(f"unknown index kind '{kind}'. Choose one of: {', '.join(KINDS)}")
    if kind == "auto":
        kind = "flat" if n <= exact_limit else "ivf-flat" if n <= IVF_FLAT_LIMIT else "ivf-pq"
    parameters: dict = {"kind": kind}
    if kind == "hnsw":
        parameters.update(links=HNSW_LINKS, search_depth=HNSW_SEARCH_DEPTH)
    if kind.startswith("ivf"):
        nlist = min(MAX_CELLS, 2 ** math.ceil(math.log2(max(2.0, math.sqrt(n)))))
        share, most = (16, 256) if kind == "ivf-pq" else (32, 64)
        parameters.update(nlist=nlist, nprobe=min(nlist, max(16, min(most, nlist // share))),
                          train_size=min(n, max(64 * nlist, 10_000)))
    if kind == "ivf-pq":
        codes = max(m for m in range(1, max(1, dimension // 2) + 1) if dimension % m == 0)
        parameters.update(pq=f"{codes}x4fs", lists="memory", rerank=RERANK_FACTOR if rerank else 0)
        if rerank:      # the exact vectors kept for re-ranking give the held-out neighbours nprobe is chosen by
            parameters["recall_target"] = RECALL_TARGET
    return parameters


def factory_string(parameters: dict) -> str:
    """The FAISS index built and merged: ivf-pq's codes as a plain IVFPQ of 4-bit codes (`np`: no polysemous
    training), turned into fast-scan once merged (FAISS 1.15.1 crashed merging fast-scan parts of 1M vectors)."""
    codes = "PQ" + parameters["pq"].replace("fs", "np") if parameters["kind"] == "ivf-pq" else "Flat"
    return f"IVF{parameters['nlist']},{codes}"


def train_cells(index: faiss.Index, sample: np.ndarray) -> None:
    """Trains an IVF index on `sample`; ivf-pq's many cells by two-level k-means (√nlist coarse clusters, each
    split in proportion to its share of the sample: far fewer distances than one k-means over every cell)."""
    from faiss.contrib.clustering import two_level_clustering

    if isinstance(index, faiss.IndexIVFPQ):
        centroids, _ = two_level_clustering(sample, int(math.sqrt(index.nlist)), index.nlist)
        index.quantizer.train(centroids)
        index.quantizer.add(centroids)
    index.train(sample)


def training_sample(shards: list[Path], n: int, size: int, seed: int = 0) -> np.ndarray:
    """`size` vectors drawn at random from all shards, read one shard at a time."""
    chosen = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    parts = []
    for _, table in read_columns(shards, ["row", "embedding"]):
        rows = table.column("row").to_numpy()
        wanted = np.flatnonzero(np.isin(rows, chosen))
        parts.append(shard_vectors(table.take(wanted)))
    return np.concatenate(parts)


def add_part(trained: np.ndarray, shards: list[str], part: str) -> int:
    """A Ray task: the vectors of some shards added (with their rows as ids) to a copy of the trained index."""
    index = faiss.deserialize_index(trained)
    for _, table in read_columns([Path(path) for path in shards], ["row", "embedding"]):
        index.add_with_ids(shard_vectors(table), table.column("row").to_numpy())
    faiss.write_index(index, part)
    return index.ntotal


def shard_groups(shards: list[Path], shard_rows: int, workers: int) -> list[list[str]]:
    """Consecutive shards grouped so that every worker gets a group, each of at most PART_ROWS vectors."""
    per_group = max(1, min(PART_ROWS // shard_rows, math.ceil(len(shards) / workers)))
    return [[str(path) for path in shards[i:i + per_group]] for i in range(0, len(shards), per_group)]


def build_ivf(folder: Path, shards: list[Path], manifest: dict, parameters: dict, dimension: int,
              address: str | None) -> faiss.Index:
    """Trains the cells on a sample, adds shard groups in Ray tasks, merges their lists: into lists.ivfdata for
    ivf-flat, in memory for ivf-pq (fast-scan lists have no on-disk form)."""
    import ray
    from faiss.contrib.ondisk import merge_ondisk
    from tqdm import tqdm

    workers = connect(address)
    trained = faiss.index_factory(dimension, factory_string(parameters))
    print(f"training {parameters['nlist']} cells on {parameters['train_size']:,} vectors")
    train_cells(trained, training_sample(shards, manifest["n"], parameters["train_size"]))
    blob = ray.put(faiss.serialize_index(trained))
    groups = shard_groups(shards, manifest["shard_rows"], workers)
    parts = [str(folder / f"part-{k:04d}.index") for k in range(len(groups))]
    task = ray.remote(num_cpus=1)(add_part)
    pending = [task.remote(blob, group, part) for group, part in zip(groups, parts)]

    with tqdm(total=manifest["n"], unit="vec", desc=f"adding shards in {len(groups)} Ray tasks") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            bar.update(ray.get(done[0]))
    if parameters.get("lists") == "memory":
        for part in parts:
            trained.merge_from(faiss.read_index(part), 0)
        # a fast-scan copy of the codes that owns its coarse quantizer (the conversion only points at trained's)
        trained = faiss.deserialize_index(faiss.serialize_index(faiss.IndexIVFPQFastScan(trained)))
    else:
        with native_output_held(1):  # FAISS prints the size of the lists file it grows
            merge_ondisk(trained, parts, str(folder / "lists.ivfdata"))
    for part in parts:
        Path(part).unlink()
    faiss.extract_index_ivf(trained).nprobe = parameters["nprobe"]
    return trained


def build_in_memory(shards: list[Path], parameters: dict, dimension: int) -> faiss.Index:
    """An exact or HNSW index over every vector at once (these kinds have no on-disk lists), a shard at a time."""
    index = new_index(dimension, parameters["kind"])
    for _, table in read_columns(shards, ["embedding"]):
        index.add(shard_vectors(table))
    return index


def write_rows(folder: Path, shards: list[Path], n: int, dimension: int, keep_vectors: bool) -> None:
    """labels.npy, rows.parquet (every column but the embedding) and, for re-ranking, vectors.npy."""
    labels = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.int64, (n,))
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, dimension)) if keep_vectors \
        else None
    writer = None
    for _, table in read_columns(shards, None):
        rows = table.column("row").to_numpy()
        labels[rows] = table.column("label").to_numpy()
        if vectors is not None:
            vectors[rows] = shard_vectors(table)
        columns = table.drop_columns(["embedding", "label"])
        writer = writer or pq.ParquetWriter(folder / "rows.parquet", columns.schema)
        writer.write_table(columns)
    writer.close()
    labels.flush()
    if vectors is not None:
        vectors.flush()


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def build_sharded_index(embeddings: str | Path, out: str | Path, kind: str = "auto",
                        exact_limit: int = EXACT_LIMIT, rerank: bool = True, address: str | None = None) -> dict:
    """Builds IDX/ `out` from the shards of `embeddings` (written whole under a temporary name); returns its info."""
    out = writable(out)
    manifest, shards = open_embeddings(embeddings)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists. Delete it to rebuild the index, or pass another --out")
    dimension = shards_dimension(shards)
    parameters = index_parameters(manifest["n"], dimension, kind, exact_limit, rerank)
    info = {**manifest, **parameters, "embeddings": str(Path(embeddings).resolve())}
    started = time.perf_counter()

    def write(temporary: str) -> None:
        folder = Path(temporary)
        folder.mkdir()
        if parameters["kind"].startswith("ivf"):
            with native_output_held(2):  # Ray's C++ notes; our bar and errors still reach the terminal
                index = build_ivf(folder, shards, manifest, parameters, dimension, address)
        else:
            index = build_in_memory(shards, parameters, dimension)
        faiss.write_index(index, str(folder / "index.faiss"))
        write_rows(folder, shards, manifest["n"], dimension, bool(parameters.get("rerank")))
        info.update(dimension=dimension, bytes_on_disk=folder_bytes(folder))
        if "recall_target" in info:
            write_json(folder / INFO, info)
            print(f"choosing nprobe for recall@10 {info['recall_target']} on {HELD_OUT} held-out vectors")
            info.update(choose_nprobe(ShardedIndex(folder), info["recall_target"]))
        info["build_seconds"] = time.perf_counter() - started
        write_json(folder / INFO, info)

    write_atomic(out, write)
    return info


class ShardedIndex:
    """An index folder written by `build_sharded_index`: FAISS over memory-mapped lists, labels and metadata.

    Answers like a Gallery (`search`, `info`, `labels`, `len`), so queries never care how large the gallery is.
    Every file is checked against index.json once, here, so that a damaged folder stops with one line naming the
    file rather than failing inside FAISS, NumPy or Arrow at the first query."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.info = read_info(self.folder)
        rebuild = rebuild_advice(self.folder, self.info)
        n, dimension = self.info["n"], self.info["dimension"]
        on_disk = "nlist" in self.info and self.info.get("lists", "disk") == "disk"    # all IVF before fast-scan
        needed = ["index.faiss", "labels.npy", "rows.parquet"] + (["lists.ivfdata"] if on_disk else []) \
            + (["vectors.npy"] if self.info.get("rerank") else [])
        missing = [name for name in needed if not (self.folder / name).is_file()]
        if missing:
            raise DataError(f"index folder {folder} has no {missing[0]}. {rebuild}")
        self.index = read_faiss(self.folder / "index.faiss", rebuild)
        if self.index.ntotal != n or self.index.d != dimension:
            raise DataError(f"{self.folder / 'index.faiss'} holds {self.index.ntotal:,} vectors of {self.index.d} "
                            f"dimensions, {INFO} says {n:,} of {dimension}. {rebuild}")
        if "nprobe" in self.info:
            faiss.extract_index_ivf(self.index).nprobe = self.info["nprobe"]
        self.labels = open_npy(self.folder / "labels.npy", (n,), np.int64, rebuild)
        self.vectors = open_npy(self.folder / "vectors.npy", (n, dimension), np.float32, rebuild) \
            if self.info.get("rerank") else None
        try:
            rows = pq.read_metadata(self.folder / "rows.parquet").num_rows
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"{self.folder / 'rows.parquet'} cannot be read ({' '.join(str(error).split())[:200]}). "
                            f"{rebuild}") from None
        if rows != n:
            raise DataError(f"{self.folder / 'rows.parquet'} holds {rows:,} rows, {INFO} says {n:,}. {rebuild}")

    def __len__(self) -> int:
        return self.info["n"]

    @cached_property
    def rows(self):
        return pq.read_table(self.folder / "rows.parquet", memory_map=True)

    def metadata(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """dataset_index and the source's columns (ra, dec, redshift, path, ...) of gallery rows `rows`."""
        taken = self.rows.take(np.asarray(rows, np.int64))
        return {name: taken.column(name).to_numpy() for name in taken.column_names if name != "row"}

    def vector(self, row: int) -> np.ndarray:
        """Gallery row `row`'s own vector, (1, dimensions): from vectors.npy, or from an index that keeps whole
        vectors (flat; ivf-flat, whose row → list map is made on the first such query)."""
        if self.vectors is not None:
            return np.asarray(self.vectors[row:row + 1])
        if isinstance(self.index, faiss.IndexIVFFlat) and self.index.direct_map.type == faiss.DirectMap.NoMap:
            self.index.make_direct_map()
        try:
            return self.index.reconstruct(int(row))[None]
        except RuntimeError:
            raise DataError(f"index {self.folder} keeps no vectors to query a gallery galaxy by (built with "
                            "--no-rerank). Query with an image, or build it again without --no-rerank") from None

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, gallery rows), both (n_queries, k), nearest first; distance = mean squared difference."""
        check_k(k, len(self))
        vectors = np.ascontiguousarray(vectors, np.float32)
        if self.vectors is None:
            squared, rows = self.index.search(vectors, k)
        else:
            squared, rows = self.rerank(vectors, self.index.search(vectors, min(len(self), self.info["rerank"] * k))[1],
                                        k)
        return np.maximum(squared, 0) / self.index.d, rows

    def rerank(self, vectors: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k candidates nearest by exact distance (missing candidates, -1, last)."""
        found = candidates >= 0
        exact = self.vectors[np.where(found, candidates, 0)]
        squared = np.where(found, ((exact - vectors[:, None]) ** 2).sum(-1), np.inf)
        order = np.argsort(squared, axis=1, kind="stable")[:, :k]
        rows = np.take_along_axis(np.where(found, candidates, -1), order, 1)
        return np.take_along_axis(squared, order, 1).astype(np.float32), rows


def held_out_neighbours(vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest gallery rows of each of the gallery rows `rows` but itself, scanning `vectors` (the
    memory-mapped gallery) a block at a time."""
    queries = np.ascontiguousarray(vectors[rows])
    heap = faiss.ResultHeap(len(rows), k + 1)
    for start in range(0, len(vectors), PART_ROWS):
        distances, found = faiss.knn(queries, np.ascontiguousarray(vectors[start:start + PART_ROWS]), k + 1)
        heap.add_result(distances, np.where(found >= 0, found + start, -1))
    heap.finalize()
    return but_themselves(heap.I, rows, k)


def but_themselves(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The first k of each row's k + 1 neighbours that are not that row itself."""
    return np.stack([neighbours[neighbours != row][:k] for neighbours, row in zip(found, rows)])


def choose_nprobe(index: ShardedIndex, target: float, held_out: int = HELD_OUT, k: int = 10, seed: int = 0) -> dict:
    """The fewest cells to probe for recall@k ≥ `target` on `held_out` gallery vectors searched as queries (each
    one's own row left out): a bisection over nprobe ≈ 2^(i/4), as recall grows with nprobe. The whole index when
    no smaller nprobe reaches it. Returns nprobe, the recall measured there and the number of held-out vectors."""
    rows = np.sort(np.random.default_rng(seed).choice(len(index), min(held_out, len(index) - 1), replace=False))
    truth = held_out_neighbours(index.vectors, rows, k)
    queries = np.asarray(index.vectors[rows])
    ivf = faiss.extract_index_ivf(index.index)
    steps = sorted({min(ivf.nlist, round(2 ** (i / 4))) for i in range(4 * math.ceil(math.log2(ivf.nlist)) + 1)})

    def recall(nprobe: int) -> float:
        ivf.nprobe = nprobe
        found = but_themselves(index.search(queries, k + 1)[1], rows, k)
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))

    low, high, measured = -1, len(steps) - 1, {}     # steps[high] reaches the target or is the whole index
    while high - low > 1:
        middle = (low + high) // 2
        measured[middle] = recall(steps[middle])
        low, high = (low, middle) if measured[middle] >= target else (middle, high)
    return {"nprobe": steps[high], "held_out_recall": round(measured.get(high) or recall(steps[high]), 4),
            "held_out": len(rows)}


def rebuild_advice(folder: Path, info: dict) -> str:
    return (f"Delete {folder} and build it again with 'evaluate.py index --embeddings {info.get('embeddings', 'EMB')} "
            f"--out {folder}', or pass another --index")


def read_info(folder: Path) -> dict:
    """index.json of an index folder, its counts checked: n, dimension and shards whole numbers of at least 1, the
    IVF cells and probes too, the re-ranking factor 0 or more."""
    try:
        info = json.loads((folder / INFO).read_text())
        if not isinstance(info, dict):
            raise ValueError(f"{INFO} holds no object")
    except (OSError, ValueError) as error:
        raise DataError(f"{folder} is not an index folder written by evaluate.py index "
                        f"({type(error).__name__}). Build one with 'evaluate.py index --out {folder}', "
                        "or pass another --index") from None
    rebuild = rebuild_advice(folder, info)
    if info.get("kind") not in KINDS[1:]:
        raise DataError(f"{folder / INFO} gives kind {json.dumps(info.get('kind'))}, not one of "
                        f"{', '.join(KINDS[1:])}. {rebuild}")
    check_counts(folder / INFO, info, ("n", "dimension", "shards") + (("nlist", "nprobe") if "nlist" in info else ()),
                 rebuild)
    if "rerank" in info:
        check_counts(folder / INFO, info, ("rerank",), rebuild, least=0)
    return info


def read_faiss(path: Path, rebuild: str) -> faiss.Index:
    """The FAISS index at `path`, its on-disk lists (if any) memory-mapped from beside it; a DataError when FAISS
    cannot read it or its lists file is shorter than the lists it describes."""
    try:
        with native_output_held(1):
            index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
    except RuntimeError as error:
        reason = " ".join(str(error).rsplit("Error: ", 1)[-1].split())      # FAISS's own words, not its source line
        raise DataError(f"{path} cannot be read by FAISS ({reason[:200]}). {rebuild}") from None
    if isinstance(index, faiss.IndexIVF):
        lists = faiss.downcast_InvertedLists(index.invlists)
        if isinstance(lists, faiss.OnDiskInvertedLists) and Path(lists.filename).stat().st_size < lists.totsize:
            raise DataError(f"{lists.filename} is truncated: {Path(lists.filename).stat().st_size:,} bytes, its "
                            f"index lists {lists.totsize:,}. {rebuild}")
    return index


def open_npy(path: Path, shape: tuple[int, ...], dtype: type, rebuild: str) -> np.ndarray:
    """The .npy array at `path`, memory-mapped once its header says `dtype` of `shape` and the file is long enough
    to hold it (a truncated file would otherwise fail only when mapped)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            stored_shape, fortran_order, stored_dtype = read_header(handle)
            data_start = handle.tell()
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a .npy file that can be read ({' '.join(str(error).split())[:200]}). "
                        f"{rebuild}") from None
    if stored_shape != shape or stored_dtype != np.dtype(dtype) or fortran_order:
        raise DataError(f"{path} holds a {stored_dtype} array of shape {stored_shape}, {INFO} asks for "
                        f"{np.dtype(dtype)} of shape {shape}. {rebuild}")
    size, needed = path.stat().st_size, data_start + math.prod(shape) * np.dtype(dtype).itemsize
    if size < needed:
        raise DataError(f"{path} is truncated: {size:,} bytes, {needed:,} for its {shape[0]:,} rows. {rebuild}")
    return np.load(path, mmap_mode="r")


def load_index(path: str | Path) -> Gallery | ShardedIndex:
    """Any saved index, for search: an IDX/ folder of `evaluate.py index`, or a .npz file of `evaluate.py neighbours
    --index`. Both answer `search(vectors, k) -> (distances, rows)`, `info`, `len()`, `labels` and
    `metadata(rows)`; a DataError (one line) for anything else."""
    path = Path(path)
    return ShardedIndex(path) if path.is_dir() else Gallery.load(path)


def open_gallery(source: Source, spec: GallerySpec, model, embedding: str, run_dir: str | Path | None = None,
                 index_path: str | Path | None = None, exact_limit: int = EXACT_LIMIT) -> Gallery | ShardedIndex:
    """The gallery of `source`: the index at `index_path` when that file (or IDX/ folder of `evaluate.py index`)
    exists, checked to be of this very gallery, else embedded (and saved there as .npz)."""
    info = gallery_info(spec, embedding, run_dir)
    if index_path is not None and Path(index_path).exists():
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
