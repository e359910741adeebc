"""How the survey-scale search scales (`evaluate.py benchmark --modes search,embed`).

search: for each size, synthetic vectors of a gallery (search.synthetic: `isotropic` clusters of 1,000, or
`encoder`, drawn from a model of the shipped encoder's vectors) are written as the Parquet shards of `evaluate.py
embed`, indexed by `build_sharded_index` (the real path: Ray tasks, lists merged) and opened by `load_index`.
Each record has the build time, the folder's size on disk, the process memory the open index holds after
answering (anonymous, and file pages mapped in), single-query and 100-query batch latency (p50/p99, wall-clock
and the process's CPU time, which other jobs on a shared machine do not inflate), and recall@10 of 1,000 fresh
queries against exact search, computed by scanning the shards one at a time.

embed: the same images (a Galaxy10-format HDF5 file) embedded in one process (`embed_source`) and into shards on
a pool of Ray workers (`embed_shards`, Ray start-up and model loading included), with the largest difference
between the vectors.
"""
from __future__ import annotations

import json
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from core.machine import device_name
from search.embedding import embed_source, embedder, gallery_spec
from search.index import INFO, build_sharded_index, index_parameters, load_index
from search.shards import connect, embed_shards, open_embeddings, read_columns, shard_vectors
from search.synthetic import K, exact_neighbours, write_synthetic

BATCH = 100
DIMENSION = 64


def memory_mb() -> dict[str, float]:
    """This process's resident memory: anonymous (heap) and file-backed (memory-mapped) pages, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile")}


def percentiles(times: list[tuple[float, float]]) -> dict[str, float]:
    """p50 and p99 in ms of (wall, CPU) seconds: p50_ms, p99_ms (wall) and cpu_p50_ms, cpu_p99_ms."""
    wall, cpu = np.asarray(times).T
    return {"p50_ms": 1000 * float(np.percentile(wall, 50)), "p99_ms": 1000 * float(np.percentile(wall, 99)),
            "cpu_p50_ms": 1000 * float(np.percentile(cpu, 50)), "cpu_p99_ms": 1000 * float(np.percentile(cpu, 99))}


def timed(call) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all of this process's threads) of `call()`."""
    started, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - started, time.process_time() - cpu


def query_index(folder: Path, queries: np.ndarray, truth: np.ndarray, sweep: tuple[float, ...]) -> list[dict]:
    """Opens the index and answers the queries one by one and in batches of BATCH, at nprobe × each factor of
    `sweep` for IVF kinds; run in a fresh process, so that its memory figures are the index's own."""
    before = memory_mb()
    index = load_index(folder)
    chosen = index.info.get("nprobe")
    answers = []
    for nprobe in sorted({max(1, min(index.info["nlist"], round(chosen * f))) for f in sweep}) if chosen else [None]:
        if nprobe is not None:
            faiss.extract_index_ivf(index.index).nprobe = nprobe
        found = index.search(queries, K)[1]
        single = [timed(lambda: index.search(query[None], K)) for query in queries]
        batches = [timed(lambda: index.search(queries[i:i + BATCH], K)) for i in range(0, len(queries), BATCH)]
        answers.append({"nprobe": nprobe, "chosen": nprobe == chosen, "single": percentiles(single),
                        "batch_100": percentiles(batches),
                        f"recall_at_{K}": float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)]))})
    after = memory_mb()
    return [{**answer, "memory_mb": after["RssAnon"] - before["RssAnon"],
             "mapped_mb": after["RssFile"] - before["RssFile"]} for answer in answers]


def measure_search(n: int, kind: str, work: Path, gallery: str = "isotropic", dimension: int = DIMENSION,
                   seed: int = 0, sweep: tuple[float, ...] = (0.5, 1, 2)) -> list[dict]:
    """Records of a `kind` index over n vectors of `gallery`: build, disk, memory, latency and recall@10, one per
    nprobe of the sweep around the chosen one."""
    embeddings, folder = work / f"emb-{n}", work / f"idx-{n}-{kind}"
    if not embeddings.exists():
        write_synthetic(embeddings, n, dimension, seed, gallery=gallery)
    queries = np.load(embeddings / "queries.npy")
    if not (embeddings / "truth.npy").exists():
        np.save(embeddings / "truth.npy", exact_neighbours(embeddings, queries))
    truth = np.load(embeddings / "truth.npy")
    build = timed(lambda: build_sharded_index(embeddings, folder, kind))[0]
    info = json.loads((folder / INFO).read_text())
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        answers = child.submit(query_index, folder, queries, truth, sweep).result()
    shutil.rmtree(folder)
    parameters = {key: info[key] for key in ("nlist", "pq", "rerank") if key in info}
    records = []
    for answer in answers:
        nprobe = answer.pop("nprobe")
        records.append({"mode": "search", "gallery": gallery, "n": n, "dimension": info["dimension"],
                        "kind": info["kind"], "held_out_recall": info.get("held_out_recall"),
                        "parameters": {**parameters, **({"nprobe": nprobe} if nprobe else {})},
                        "build_s": build, "disk_mb": info["bytes_on_disk"] / 2**20, **answer})
    return records


def measure_embed(images: int, work: Path, model: str = "autoencoder", image_size: int = 64) -> dict:
    """The same images (a Galaxy10-format HDF5 file, read in blocks) embedded in one process and on Ray workers
    (one per CPU): seconds and the largest difference between the vectors."""
    import zoo
    from core.runs import TrainConfig
    from evaluation.benchmark.inputs import galaxy10_file
    from training.run import train

    run = work / "run"
    train(TrainConfig(model=model, limit=64, image_size=image_size, epochs=1, steps_per_epoch=1), run,
          verbose=0)
    data = {"dataset": "galaxy10", "data_dir": str(galaxy10_file(work / "galaxy10.h5", images, image_size)),
            "limit": images}  # not the run's own --limit
    spec = gallery_spec(run, **data)
    vectors = {}
    one = timed(lambda: vectors.update(embed_source(spec.open(), {"one": embedder(zoo.load(run), "latent")},
                                                    spec)[0]))[0]
    workers = connect()
    on_ray = timed(lambda: embed_shards(work / "emb", run, "latent", **data))[0]
    manifest, shards = open_embeddings(work / "emb")
    ray_vectors = np.concatenate([shard_vectors(table) for _, table in read_columns(shards, ["embedding"])])
    return {"mode": "embed", "model": model, "images": images, "image_size": image_size, "workers": workers,
            "shards": manifest["shards"], "one_process_s": one, "ray_s": on_ray,
            "overhead_percent": 100 * (on_ray / one - 1),
            "max_abs_difference": float(np.abs(ray_vectors - vectors["one"]).max())}


def run_scale(modes: tuple[str, ...], sizes: tuple[int, ...], kinds: tuple[str, ...], embed_images: int,
              out: Path, galleries: tuple[str, ...] = ("isotropic",)) -> dict:
    """The machine and the records of `modes` (search, embed; search on each of `galleries`), working in a
    temporary folder inside `out`."""
    import ray

    records: list[dict] = []
    result = {"machine": device_name("cpu"), "versions": {"faiss": faiss.__version__, "ray": ray.__version__},
              "records": records}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".scale-") as work:
        if "embed" in modes:
            records.append(measure_embed(embed_images, Path(work)))
            print(records[-1])
        for gallery in galleries if "search" in modes else ():
            for n in sizes:
                for kind in dict.fromkeys(index_parameters(n, DIMENSION, kind)["kind"] for kind in kinds):
                    records.extend(measure_search(n, kind, Path(work), gallery))
                    print(records[-1])
                shutil.rmtree(Path(work) / f"emb-{n}")
    return result
