"""The measurements: one record per model, device and mode (train, infer, generate, fit, pipeline)."""
from __future__ import annotations

import inspect
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

import datasets
import zoo
from core.machine import (
    default_xla,
    device_name,
    dtype_policy,
    find_device,
    matmul_gflops,
    peak_memory_mb,
    reset_peak_memory,
    tensorflow_available,
    versions,
)
from core.worlds import FIELD_SIZE, FIELD_TILE
from datasets.source import ArraySource, Source
from evaluation.benchmark.config import (
    CALL_BYTES,
    FIT_MEMORY_GIB,
    FIT_REPEATS,
    INFERENCE_CAPABILITIES,
    MATMUL_SIZE,
    MEASURED_MODES,
    MIXED_POLICY,
    BenchmarkConfig,
)
from evaluation.benchmark.flops import training_flops_per_image
from evaluation.benchmark.inputs import galaxy10_file, model_image_size, star_fields, synthetic_images, synthetic_labels
from zoo.parts import CompositeModel


def record(model: str, device: str, mode: str, config: BenchmarkConfig, *, status: str = "ok",
           reason: str | None = None, images: int | None = None, took: Elapsed | None = None,
           steps: int | None = None, image_size: int | None = None, **extra) -> dict:
    """One model × device × mode result with the keys every record has (benchmark.json): `images` images in
    `steps` steps took `took`. `cpu_ms_per_step` (process CPU time, all threads) is the steadier figure on a
    machine shared with other work; images/s and ms/step are wall-clock."""
    measured = status == "ok"
    return {"model": model, "device": device, "mode": mode, "status": status, "reason": reason,
            "images_per_s": images / took.wall if measured else None,
            "ms_per_step": 1000 * took.wall / steps if measured else None,
            "cpu_ms_per_step": 1000 * took.cpu / steps if measured else None,
            "images": images, "steps": steps, "batch_size": config.batch_size,
            "image_size": image_size or config.image_size, "backend": keras.backend.backend(),
            "versions": versions(), "precision": None, "peak_memory_mb": None, **extra}


@dataclass(frozen=True)
class Elapsed:
    """Wall-clock and process CPU seconds (all threads) that some work took."""

    wall: float
    cpu: float


def elapsed(call: Callable) -> Elapsed:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return Elapsed(time.perf_counter() - wall, time.process_time() - cpu)


def timed_steps(step: Callable, steps: int, max_seconds: float,
                step_walls: list[float] | None = None) -> tuple[Elapsed, int]:
    """Runs `step` up to `steps` times, stopping early once `max_seconds` have passed: (time, steps run).
    `step_walls`, when given, gets the wall time of every step."""
    wall, cpu = time.perf_counter(), time.process_time()
    done, last = 0, wall
    while done < steps:
        step()
        done += 1
        now = time.perf_counter()
        if step_walls is not None:
            step_walls.append(now - last)
        last = now
        if now - wall > max_seconds:
            break
    return Elapsed(time.perf_counter() - wall, time.process_time() - cpu), done


def warm_up(call: Callable, config: BenchmarkConfig) -> float:
    """Runs `call` once, which also traces and compiles (its wall time is returned), then `warmup` more
    times (fewer once max_seconds are spent)."""
    compile_s = elapsed(call).wall
    timed_steps(call, config.warmup, config.max_seconds)
    return compile_s


def batch_option(method: Callable, batch_size: int) -> dict:
    return {"batch_size": batch_size} if "batch_size" in inspect.signature(method).parameters else {}


# --- measurements ---------------------------------------------------------------------------------------

def training_source(name: str, batch: np.ndarray, config: BenchmarkConfig) -> Source:
    """What a `fit_source` model trains on: the batch itself, or for a scorer as many built-in scored fields
    (scorers learn from images with scores, not from any batch)."""
    if "score" in zoo.get_entry(name).capabilities:
        return datasets.load("star-fields", scored=True, seed=config.seed, limit=len(batch))
    return ArraySource(np.round(batch * 255).astype(np.uint8))


def measure_train(name: str, model, device: str, batch: np.ndarray, labels: np.ndarray, config: BenchmarkConfig,
                  peak_gflops: float) -> dict:
    """`steps` train_on_batch calls on one batch; a composite model (zoo/parts.py): one `fit_source` call
    over one batch of images (its whole training, as train.py runs it, with epochs=1). GFLOP/s come from the
    median step, which a burst of other work on a shared machine moves less than the mean."""
    image_size = batch.shape[1]
    step_walls: list[float] = []
    if isinstance(model, CompositeModel):
        source = training_source(name, batch, config)

        def fit():
            model.fit_source(source, epochs=1, batch_size=config.batch_size, seed=config.seed, verbose=0)

        compile_s = elapsed(fit).wall
        total, steps, stopped_early = elapsed(fit), 1, False
    else:
        x, y = ops.convert_to_tensor(batch), ops.convert_to_tensor(labels)
        compile_s = warm_up(lambda: model.train_on_batch(x, y), config)
        total, steps = timed_steps(lambda: model.train_on_batch(x, y), config.steps, config.max_seconds, step_walls)
        stopped_early = steps < config.steps
    extra = {"compile_s": compile_s, "jit_compile": getattr(model, "jit_compile", None),
             "stopped_early": stopped_early}
    if step_walls:
        extra["median_ms_per_step"] = 1000 * float(np.median(step_walls))
    flops = training_flops_per_image(model)
    if flops is not None and step_walls:
        achieved = flops * len(batch) / float(np.median(step_walls)) / 1e9
        extra.update(gflop_per_image=flops / 1e9, achieved_gflops=achieved,
                     percent_of_peak=100 * achieved / peak_gflops)
    return record(name, device, "train", config, images=len(batch) * steps, took=total, steps=steps,
                  image_size=image_size, **extra)


def batches_per_call(batch_bytes: int, config: BenchmarkConfig) -> int:
    """How many batches one inference or generation call takes: all `steps` of them (as a user calls
    model.classify(images) on many images at once), or fewer when that would pass CALL_BYTES (1000 px fields)."""
    return max(1, min(config.steps, CALL_BYTES // batch_bytes))


def measure_inference(name: str, model, device: str, capability: str, batch: np.ndarray,
                      config: BenchmarkConfig) -> dict:
    """The capability method (classify, encode, ...) on `steps` batches of images, with its batch_size set."""
    method = getattr(model, capability)
    options = batch_option(method, config.batch_size)
    per_call = batches_per_call(batch.nbytes, config)
    images = np.concatenate([batch] * per_call)
    compile_s = warm_up(lambda: method(batch, **options), config)
    wanted = -(-config.steps // per_call)
    total, calls = timed_steps(lambda: method(images, **options), wanted, config.max_seconds)
    return record(name, device, capability, config, images=len(images) * calls, took=total,
                  steps=per_call * calls, image_size=batch.shape[1], compile_s=compile_s,
                  jit_compile=getattr(model, "jit_compile", None), stopped_early=calls < wanted)


def measure_generate(name: str, model, device: str, config: BenchmarkConfig, image_size: int,
                     channels: int) -> dict:
    """generate(n, seed) for `steps` batches of images, with its batch_size set."""
    options = batch_option(model.generate, config.batch_size)
    per_call = batches_per_call(config.batch_size * image_size**2 * channels * 4, config)
    compile_s = warm_up(lambda: model.generate(config.batch_size, seed=config.seed, **options), config)
    wanted = -(-config.steps // per_call)
    total, calls = timed_steps(lambda: model.generate(per_call * config.batch_size, seed=config.seed, **options),
                               wanted, config.max_seconds)
    return record(name, device, "generate", config, images=per_call * config.batch_size * calls, took=total,
                  steps=per_call * calls, image_size=image_size, compile_s=compile_s,
                  jit_compile=getattr(model, "jit_compile", None), stopped_early=calls < wanted)


def measure_fit(name: str, model, device: str, entry: zoo.registry.Entry, config: BenchmarkConfig,
                image_size: int, channels: int) -> list[dict]:
    """Keras fit from tensors already in memory against fit from the tf.data pipeline (uint8 images, cached,
    shuffled, flipped and rotated, scaled, prefetched), one epoch of up to `steps` batches each (fewer when
    a one-batch fit says an epoch would pass max_seconds). After a warm-up epoch of the pipeline (compiling,
    filling the cache) the two alternate FIT_REPEATS times and the fastest epoch of each counts, so a burst
    of load from other processes does not decide the overhead."""
    skip = None
    if isinstance(model, CompositeModel):
        skip = "a composite model trains from whole images (fit_source), so there is no Keras fit to compare"
    elif (gib := config.images * image_size**2 * channels * 4 / 2**30) > FIT_MEMORY_GIB:
        skip = f"{config.images} images of {image_size} px need {gib:.1f} GiB in memory; lower --steps"
    if skip:
        return [record(name, device, mode, config, status="skipped", reason=skip, image_size=image_size)
                for mode in MEASURED_MODES["fit"]]

    def fit_from_memory(images, labels):
        x, y = ops.convert_to_tensor(images), ops.convert_to_tensor(labels)
        return lambda: model.fit(x, y, batch_size=config.batch_size, shuffle=False, verbose=0)

    probe = fit_from_memory(synthetic_images(entry.world, config.batch_size, image_size, channels, config.seed),
                            synthetic_labels(entry, config.batch_size, config.seed))
    probe()  # compiles
    steps = max(1, min(config.steps, int(config.max_seconds / elapsed(probe).wall)))
    images = synthetic_images(entry.world, steps * config.batch_size, image_size, channels, config.seed)
    labels = synthetic_labels(entry, steps * config.batch_size, config.seed)
    fits = {"fit-in-memory": fit_from_memory(images, labels)}
    if tensorflow_available():
        from datasets.pipeline import make_dataset

        source = ArraySource(np.round(images * 255).astype(np.uint8), labels)
        dataset = make_dataset(source, image_size=image_size, batch_size=config.batch_size, shuffle=True,
                               augment=True, seed=config.seed)
        fits["fit-pipeline"] = lambda: model.fit(dataset, shuffle=False, verbose=0)  # make_dataset shuffles
        fits["fit-pipeline"]()
    timings = {mode: [] for mode in fits}
    for _ in range(FIT_REPEATS):
        for mode, fit in fits.items():
            timings[mode].append(elapsed(fit))
    best = {mode: min(found, key=lambda took: took.wall) for mode, found in timings.items()}
    common = dict(images=len(images), steps=steps, image_size=image_size,
                  jit_compile=getattr(model, "jit_compile", None), stopped_early=steps < config.steps)
    records = [record(name, device, "fit-in-memory", config, took=best["fit-in-memory"], **common)]
    if "fit-pipeline" not in best:
        return records + [record(name, device, "fit-pipeline", config, status="skipped", image_size=image_size,
                                 reason="TensorFlow is not installed; the tf.data pipeline needs it")]
    pipeline, in_memory = best["fit-pipeline"], best["fit-in-memory"]
    return records + [record(name, device, "fit-pipeline", config, took=pipeline,
                             overhead_percent=100 * (pipeline.wall - in_memory.wall) / in_memory.wall,
                             cpu_overhead_percent=100 * (pipeline.cpu - in_memory.cpu) / in_memory.cpu, **common)]


def pipeline_sources(config: BenchmarkConfig, folder: Path) -> list[tuple[str, object, int | None]]:
    """(label, source, tile) for three ways images reach training, each about `config.images` images:
    synthetic galaxies rendered on the fly, a Galaxy10 DECals-format file (256 px stamps for 64 px training),
    and rendered 1000×1000 star fields held in memory, cut into 256 px tiles."""
    from datasets.pipeline import tile_offsets

    n = config.images
    tiles_per_field = len(tile_offsets(FIELD_SIZE, FIELD_TILE)) ** 2
    h5_path = galaxy10_file(folder / "Galaxy10_DECals.h5", n, 4 * config.image_size, config.seed)
    fields = star_fields(-(-n // tiles_per_field), FIELD_SIZE, config.seed)
    return [
        ("synthetic-galaxies", datasets.load("synthetic-galaxies", image_size=config.image_size, seed=config.seed,
                                             limit=n), None),
        ("galaxy10-hdf5", datasets.load("galaxy10", data_dir=str(h5_path)), None),
        ("star-field-tiles", ArraySource(fields, name="star-fields"), FIELD_TILE),
    ]


def measure_pipelines(config: BenchmarkConfig, progress: Callable[[str], None]) -> list[dict]:
    """tf.data alone, as training uses it: a first pass (read, decode, crop/tile, resize, cache, shuffle,
    flips and rotations, scale, batch) and a second pass that reads from the cache."""
    labels = ("synthetic-galaxies", "galaxy10-hdf5", "star-field-tiles")
    if not tensorflow_available():
        return [record(label, "cpu", mode, config, status="skipped",
                       reason="TensorFlow is not installed; the tf.data pipeline needs it")
                for label in labels for mode in ("pipeline-first-pass", "pipeline-cached")]
    from datasets.pipeline import data_errors, make_dataset

    def one_pass(dataset) -> tuple[int, int, Elapsed]:
        counted = {"images": 0, "batches": 0}

        def read_all():
            with data_errors():
                for images, _ in dataset:
                    counted["images"] += int(images.shape[0])
                    counted["batches"] += 1

        took = elapsed(read_all)
        return counted["images"], counted["batches"], took

    records = []
    with tempfile.TemporaryDirectory(prefix="astrozoo-benchmark-") as folder:
        for label, source, tile in pipeline_sources(config, Path(folder)):
            dataset = make_dataset(source, image_size=config.image_size, tile=tile, batch_size=config.batch_size,
                                   shuffle=True, augment=True, seed=config.seed)
            for mode in ("pipeline-first-pass", "pipeline-cached"):
                count, batches, took = one_pass(dataset)
                records.append(record(label, "cpu", mode, config, images=count, took=took, steps=batches))
                progress(line(records[-1]))
    return records


def build(name: str, config: BenchmarkConfig, **overrides):
    """The model with its defaults, at --image-size (galaxy models) and --seed where it has those options."""
    entry = zoo.get_entry(name)
    wanted = {"image_size": model_image_size(entry, config), "seed": config.seed}
    return zoo.create(name, **{key: value for key, value in wanted.items() if key in entry.defaults}, **overrides)


def measure_model(name: str, device: str, config: BenchmarkConfig, peak_gflops: float,
                  progress: Callable[[str], None]) -> list[dict]:
    """Every mode the model's capabilities allow, on one device. A failing measurement becomes a record
    (status "failed" with the error, or "skipped" with the model's own ModelError), so one model cannot
    lose the others' figures."""
    entry = zoo.get_entry(name)
    image_size = model_image_size(entry, config)
    channels = entry.defaults.get("channels", 1 if entry.world == "star-fields" else 3)
    inference = [c for c in INFERENCE_CAPABILITIES if c in entry.capabilities and "infer" in config.modes]
    policy = MIXED_POLICY[device] if config.mixed_precision else "float32"
    records = []
    with keras.device(find_device(device)), dtype_policy(policy):
        keras.utils.set_random_seed(config.seed)
        model = build(name, config)
        xla = default_xla(device) if config.xla is None else config.xla
        if xla is not None and not isinstance(model, CompositeModel):
            model.jit_compile = xla
        if "train" in config.modes or inference:
            batch = synthetic_images(entry.world, config.batch_size, image_size, channels, config.seed)
            labels = synthetic_labels(entry, config.batch_size, config.seed)
        measurements: list[tuple[str, Callable[[], dict | list[dict]]]] = []
        if "train" in config.modes:
            measurements.append(("train", lambda: measure_train(name, model, device, batch, labels, config,
                                                                peak_gflops)))
        measurements += [(capability, lambda c=capability: measure_inference(name, model, device, c, batch, config))
                         for capability in inference]
        if "generate" in config.modes and "generate" in entry.capabilities:
            measurements.append(("generate", lambda: measure_generate(name, model, device, config, image_size,
                                                                      channels)))
        if "fit" in config.modes:
            measurements.append(("fit", lambda: measure_fit(name, model, device, entry, config, image_size,
                                                            channels)))
        for mode, measure in measurements:
            reset_peak_memory(device)
            try:
                found = measure()
            except zoo.ModelError as error:  # the model says it cannot do this here
                found = [record(name, device, m, config, status="skipped", reason=str(error), image_size=image_size)
                         for m in MEASURED_MODES.get(mode, (mode,))]
            except Exception as error:
                message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())  # no terminal colours
                reason = f"{type(error).__name__}: {message[:300]}"
                found = [record(name, device, m, config, status="failed", reason=reason, image_size=image_size)
                         for m in MEASURED_MODES.get(mode, (mode,))]
            for result in found if isinstance(found, list) else [found]:
                result.update(precision=policy, peak_memory_mb=peak_memory_mb(device))
                records.append(result)
                progress(line(result))
    return records


def line(result: dict) -> str:
    """One progress line per finished measurement."""
    what = (f"{result['images_per_s']:10.1f} images/s  {result['ms_per_step']:8.1f} ms/step"
            if result["status"] == "ok" else f"{result['status']}: {result['reason']}")
    return f"{result['model']:<20} {result['device']:<4} {result['mode']:<20} {what}"


def run(config: BenchmarkConfig, progress: Callable[[str], None] = print) -> dict:
    """Measures every model × device × mode in `config`; returns {"meta": ..., "records": [...]}.

    Every model is built once first, so a bad model name or size stops the run before any measuring.
    """
    for name in config.models:
        build(name, config)
    meta = {"config": asdict(config), "versions": versions(), "devices": {},
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    records = []
    for device in config.devices:
        if find_device(device) is None:
            reason = f"the {keras.backend.backend()} backend sees no {device.upper()} on this machine"
            meta["devices"][device] = {"present": False, "reason": reason}
            records.append(record("all", device, "device", config, status="absent", reason=reason))
            progress(line(records[-1]))
            continue
        peak = matmul_gflops(device, MATMUL_SIZE[device])
        meta["devices"][device] = {"present": True, "name": device_name(device), "matmul_gflops": peak,
                                   "matmul_size": MATMUL_SIZE[device]}
        progress(f"{device}: {meta['devices'][device]['name']}, float32 matmul {peak:.1f} GFLOP/s")
        for name in config.models:
            records += measure_model(name, device, config, peak, progress)
    if "pipeline" in config.modes:
        records += measure_pipelines(config, progress)
    return {"meta": meta, "records": records}
