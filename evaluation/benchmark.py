"""How fast each registered model trains, infers and generates, per device: `python evaluate.py benchmark`.

Every measurement makes a first call on one batch of `batch_size` images (its time, which includes
tracing and compiling, is `compile_s`) and `warmup` untimed ones, then times `steps` batches, or fewer
once `max_seconds` are spent (slow models on a CPU; each record says how many steps ran):
- train: `steps` train_on_batch calls on synthetic tensors; a model that is not one Keras model (naive,
  layered, the scorers) is timed on one `fit_source` call over one batch of fields (built-in scored fields for
  the scorers), its whole training as train.py runs it; the scorers' `score` is timed on what that call trained;
- classify / encode / reconstruct / score: the capability methods, generate: `generate(n, seed)`, each
  called on all `steps` batches at once (fewer per call for 1000 px fields), batch_size set;
- fit-in-memory / fit-pipeline: a Keras fit epoch of `steps` batches from tensors in memory against one
  from `datasets.pipeline.make_dataset` (cache, shuffle, flips and rotations, prefetch): the tf.data overhead
  (fastest of FIT_REPEATS alternating epochs each, after a warm-up epoch);
- pipeline-first-pass / pipeline-cached: tf.data alone (no model), from the synthetic galaxies, from a
  Galaxy10-format HDF5 file written for the benchmark, and from 1000×1000 star fields cut into 256 px tiles.

Galaxy models run at --image-size; star-field models on whole fields of their own size (1000 px). The
benchmark asks the registry what each model can do, so new entries are measured without editing this file.
It runs on any Keras backend: tf.data measurements need TensorFlow and are skipped with a reason without
it, and so are train steps written with TensorFlow (tf.GradientTape) on other backends. A device the
backend does not see is reported as absent. The seed CNN's training FLOPs are counted from its layers and
compared with a float32 matmul measured in the same run (achieved GFLOP/s and % of that peak).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import platform
import re
import tempfile
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

import zoo
from datasets.source import ArraySource, DataError, Source
from evaluation.files import resize_batch, save_figure, write_atomic, write_json

DEVICES = ("cpu", "gpu")
MODES = ("train", "infer", "generate", "fit", "pipeline")
INFERENCE_CAPABILITIES = ("classify", "encode", "reconstruct", "score")
MEASURED_MODES = {"fit": ("fit-in-memory", "fit-pipeline")}  # measurements that give more than one record
MATMUL_SIZE = {"cpu": 2048, "gpu": 8192}
MIXED_POLICY = {"cpu": "mixed_bfloat16", "gpu": "mixed_float16"}  # CPUs lack fast float16 kernels
PRICES = {"p3.8xlarge": 12.24, "t3.xlarge": 0.17}  # $/hour, the star-field seed's Table I
STAR_FIELD_SIZE, STAR_FIELD_TILE = 1000, 256
FIT_MEMORY_GIB = 2.0  # the fit comparison holds steps × batch_size float32 images in memory
FIT_REPEATS = 2  # timed epochs of each fit, alternating
CALL_BYTES = 512 * 2**20  # at most this many bytes of float32 images per inference or generation call


@dataclass
class BenchmarkConfig:
    """What to measure; `evaluate.py benchmark` flags map one to one onto these fields."""

    models: tuple[str, ...]
    devices: tuple[str, ...] = DEVICES
    modes: tuple[str, ...] = MODES
    batch_size: int = 64
    image_size: int = 64
    steps: int = 50
    warmup: int = 5
    max_seconds: float = 20.0  # each timed loop stops once this is spent (at least one step), for slow models
    xla: bool | None = None  # None: default_xla (TensorFlow: off on CPU, on with GPU; JAX: always)
    mixed_precision: bool = False
    seed: int = 0

    @property
    def images(self) -> int:
        return self.batch_size * self.steps


# --- the machine ----------------------------------------------------------------------------------------

def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
             "numpy": np.__version__, "platform": platform.platform()}
    for package in ("tensorflow", "jax", "torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def find_device(device: str) -> str | None:
    """The Keras name of the first `device` ('cpu' or 'gpu') the backend sees, e.g. 'gpu:0', or None."""
    try:
        found = keras.distribution.list_devices(device)
    except RuntimeError:  # JAX raises when it has no platform of that kind
        return None
    return found[0] if found else None


def device_name(device: str) -> str:
    """A readable name: the CPU model and the cores this process may use, or the GPU's product name."""
    backend = keras.backend.backend()
    if device == "cpu":
        try:
            lines = Path("/proc/cpuinfo").read_text().splitlines()
        except OSError:
            lines = []
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                     platform.machine())
        return f"{model}, {len(os.sched_getaffinity(0))} cores"
    if backend == "jax":
        import jax

        return jax.devices(device)[0].device_kind
    if backend == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return details.get("device_name", "GPU")
    return device.upper()


def reset_peak_memory(device: str) -> None:
    if device == "gpu" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_mb(device: str) -> float | None:
    """Peak device memory where the backend reports it: TensorFlow on GPU since the last reset, JAX on GPU
    since the process started; None on CPU, where neither reports it."""
    if device != "gpu":
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    if backend == "jax":
        import jax

        stats = jax.devices("gpu")[0].memory_stats() or {}
        return stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None
    return None


def matmul_gflops(device: str, size: int, repeats: int = 5) -> float:
    """The machine's reference throughput: the best of `repeats` float32 size×size matmuls (2·size³ FLOPs)."""
    with keras.device(find_device(device)):
        a = keras.random.uniform((size, size), seed=1)
        b = keras.random.uniform((size, size), seed=2)
        ops.convert_to_numpy(ops.sum(ops.matmul(a, b)))
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            ops.convert_to_numpy(ops.sum(ops.matmul(a, b)))  # reading the sum back waits for the device
            best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def default_xla(device: str) -> bool | None:
    """XLA as Keras chooses it on a machine with only this device: TensorFlow leaves it off on CPU-only
    machines (its oneDNN kernels are much faster there) and turns it on with a GPU; JAX always compiles
    with XLA. Keras decides per machine, so on a GPU machine the CPU would otherwise get XLA too."""
    return False if device == "cpu" and keras.backend.backend() == "tensorflow" else None


@contextmanager
def dtype_policy(name: str):
    """Builds models under a Keras dtype policy (float32, mixed_float16, mixed_bfloat16), then restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# --- FLOPs ----------------------------------------------------------------------------------------------

def leaf_layers(layer) -> list:
    """The layers that do the work, found through nested models and Sequentials."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    return [leaf for child in children for leaf in leaf_layers(child)]


def forward_flops_per_image(model) -> int | None:
    """FLOPs (2 per multiply-add) of one image's forward pass through every Conv2D, Conv2DTranspose and Dense.

    Conv2D: 2·H_out·W_out·k²·C_in·C_out; Conv2DTranspose: 2·H_in·W_in·k²·C_in·C_out; Dense: 2·in·out per
    position. Activations, pooling and dropout are left out (under 1% of the seed CNN). None when the model
    has another layer with weights, or a layer whose shapes are not known, since the count would be wrong.
    """
    if not isinstance(model, keras.Model):
        return None
    total = 0
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        if not isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose, layers.Dense)):
            return None
        try:
            shape = (layer.input if isinstance(layer, layers.Conv2DTranspose) else layer.output).shape
        except (AttributeError, ValueError):
            return None
        positions = math.prod(shape[1:-1])
        total += 2 * positions * math.prod(layer.kernel.shape)
    return total


def uses_keras_train_step(model) -> bool:
    return isinstance(model, keras.Model) and type(model).train_step is keras.Model.train_step


def training_flops_per_image(model) -> int | None:
    """≈ 3 × forward (the backward pass costs about twice the forward); only for Keras' own train step, where
    one step is one forward and one backward pass through every layer (not so for GANs)."""
    forward = forward_flops_per_image(model) if uses_keras_train_step(model) else None
    return None if forward is None else 3 * forward


# --- synthetic inputs -----------------------------------------------------------------------------------

def model_image_size(entry: zoo.registry.Entry, config: BenchmarkConfig) -> int:
    """--image-size for galaxy models; star-field models keep their own field size (1000 px), their training
    unit in the star-field seed's Table I."""
    if entry.world == "star-fields":
        return entry.defaults.get("image_size", STAR_FIELD_SIZE)
    return config.image_size


def star_fields(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n rendered star fields (datasets.star_fields) as uint8 (n, size, size, 1), resized when not 1000 px."""
    import datasets

    images, _ = datasets.load("star-fields", seed=seed, limit=n).read(0, n)
    return resize_batch(np.stack(images), size)


def synthetic_images(world: str, n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """float32 (n, size, size, channels) in [0, 1]: uniform noise for galaxy models (a step costs the same
    whatever the pixels), rendered star fields for star-field models (whose fits look for stars)."""
    if world == "star-fields":
        return np.repeat(star_fields(n, size, seed).astype(np.float32) / 255, channels, axis=-1)
    return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def synthetic_labels(entry: zoo.registry.Entry, n: int, seed: int = 0) -> np.ndarray:
    """Random class labels for classifiers; zeros for the others, which ignore labels as train.py gives them."""
    return np.random.default_rng(seed).integers(0, entry.defaults.get("num_classes", 1), n)


def galaxy10_file(path: Path, n: int, size: int, seed: int = 0, distinct: int = 64) -> Path:
    """Writes a Galaxy10 DECals-format HDF5 file (uint8 `images` (n, size, size, 3), `ans` 0-9) of noisy
    blobs, deflate-compressed in one-image chunks like the download (2.5 GB for 3.5 GB of pixels), so reading
    it costs decompression. `distinct` images are compressed once and their chunks repeated, which keeps
    writing fast; every row is still read and decompressed on its own."""
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    width = rng.uniform(size / 16, size / 6, (min(n, distinct), 1, 1))
    blobs = (200 * np.exp(-(yy**2 + xx**2) / (2 * width**2))).astype(np.uint8)[..., None]
    stamps = blobs + rng.integers(0, 40, (len(blobs), size, size, 3), dtype=np.uint8)
    chunks = [zlib.compress(stamp.tobytes(), 1) for stamp in stamps]
    with h5py.File(path, "w") as h5:
        images = h5.create_dataset("images", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3),
                                   compression="gzip")
        for row in range(n):
            images.id.write_direct_chunk((row, 0, 0, 0), chunks[row % len(chunks)])
        h5.create_dataset("ans", data=rng.integers(0, 10, n).astype(np.uint8))
    return path


# --- records --------------------------------------------------------------------------------------------

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

def backend_skip_reason(model) -> str | None:
    """Why `model` cannot train on the current backend (its `train_backends`), or None when it can."""
    backend = keras.backend.backend()
    if zoo.registry.trains_on(model, backend):
        return None
    return (f"it trains only with {', '.join(model.train_backends)} (its train step uses tf.GradientTape), "
            f"not {backend}; run it with KERAS_BACKEND={model.train_backends[0]}")


def training_source(name: str, batch: np.ndarray, config: BenchmarkConfig) -> Source:
    """What a `fit_source` model trains on: the batch itself, or for a scorer as many built-in scored fields
    (scorers learn from images with scores, not from any batch)."""
    if "score" in zoo.get_entry(name).capabilities:
        import datasets

        return datasets.load("star-fields", scored=True, seed=config.seed, limit=len(batch))
    return ArraySource(np.round(batch * 255).astype(np.uint8))


def measure_train(name: str, model, device: str, batch: np.ndarray, labels: np.ndarray, config: BenchmarkConfig,
                  peak_gflops: float) -> dict:
    """`steps` train_on_batch calls on one batch; a model that is not one Keras model: one `fit_source` call
    over one batch of images (its whole training, as train.py runs it, with epochs=1). GFLOP/s come from the
    median step, which a burst of other work on a shared machine moves less than the mean."""
    image_size = batch.shape[1]
    step_walls: list[float] = []
    if (reason := backend_skip_reason(model)) is not None:
        return record(name, device, "train", config, status="skipped", reason=reason, image_size=image_size)
    if isinstance(model, keras.Model):
        x, y = ops.convert_to_tensor(batch), ops.convert_to_tensor(labels)
        compile_s = warm_up(lambda: model.train_on_batch(x, y), config)
        total, steps = timed_steps(lambda: model.train_on_batch(x, y), config.steps, config.max_seconds, step_walls)
        stopped_early = steps < config.steps
    elif hasattr(model, "fit_source"):  # training/run.py's protocol for models that are not one Keras model
        source = training_source(name, batch, config)

        def fit():
            model.fit_source(source, epochs=1, batch_size=config.batch_size, seed=config.seed, verbose=0)

        compile_s = elapsed(fit).wall
        total, steps, stopped_early = elapsed(fit), 1, False
    else:
        return record(name, device, "train", config, status="skipped", image_size=image_size,
                      reason="no train step: neither a Keras model nor a model with fit_source")
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
    if not isinstance(model, keras.Model):
        skip = "not a Keras model, so there is no Keras fit to compare"
    elif (reason := backend_skip_reason(model)) is not None:
        skip = reason
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
    import datasets
    from datasets.pipeline import tile_offsets

    n = config.images
    tiles_per_field = len(tile_offsets(STAR_FIELD_SIZE, STAR_FIELD_TILE)) ** 2
    h5_path = galaxy10_file(folder / "Galaxy10_DECals.h5", n, 4 * config.image_size, config.seed)
    fields = star_fields(-(-n // tiles_per_field), STAR_FIELD_SIZE, config.seed)
    return [
        ("synthetic-galaxies", datasets.load("synthetic-galaxies", image_size=config.image_size, seed=config.seed,
                                             limit=n), None),
        ("galaxy10-hdf5", datasets.load("galaxy10", data_dir=str(h5_path)), None),
        ("star-field-tiles", ArraySource(fields, name="star-fields"), STAR_FIELD_TILE),
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


def build(name: str, config: BenchmarkConfig):
    """The model with its defaults, at --image-size (galaxy models) and --seed where it has those options."""
    entry = zoo.get_entry(name)
    wanted = {"image_size": model_image_size(entry, config), "seed": config.seed}
    return zoo.create(name, **{key: value for key, value in wanted.items() if key in entry.defaults})


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
        if xla is not None and isinstance(model, keras.Model):
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


# --- reports --------------------------------------------------------------------------------------------

def cell(result: dict | None) -> str:
    if result is None:
        return "-"
    if result["status"] != "ok":
        return result["status"]
    return f"{result['images_per_s']:,.1f} ({result['ms_per_step']:,.1f} ms)"


def notes(results: list[dict]) -> str:
    found = []
    for result in results:
        device = result["device"]
        if result["status"] in ("skipped", "failed"):
            found.append(f"{device}: {result['reason']}")
        if result.get("compile_s") is not None:
            found.append(f"{device} compile {result['compile_s']:.1f} s")
        if result.get("percent_of_peak") is not None:
            found.append(f"{device} {result['achieved_gflops']:.1f} GFLOP/s = {result['percent_of_peak']:.0f}% "
                         "of matmul peak")
        if result.get("overhead_percent") is not None:
            found.append(f"{device} tf.data overhead {result['overhead_percent']:+.0f}% "
                         f"(CPU time {result['cpu_overhead_percent']:+.0f}%)")
        if result.get("stopped_early"):
            found.append(f"{device} stopped by --max-seconds after {result['steps']} step"
                         + ("s" if result["steps"] != 1 else ""))
        if result.get("peak_memory_mb") is not None:
            found.append(f"{device} peak {result['peak_memory_mb']:,.0f} MB")
    return "; ".join(found)


def markdown_table(result: dict) -> str:
    """Rows model × mode, one column per device: images/s (ms per step of batch_size images)."""
    config, devices = result["meta"]["config"], result["meta"]["devices"]
    header = [f"backend {result['meta']['versions']['backend']}, keras {result['meta']['versions']['keras']}; "
              f"batch {config['batch_size']}, {config['image_size']}×{config['image_size']} px, "
              f"{config['steps']} steps after {config['warmup']} warm-up; precision "
              f"{'mixed' if config['mixed_precision'] else 'float32'}; "
              f"XLA {({None: 'as Keras chooses per device', True: 'on', False: 'off'})[config['xla']]}"]
    for device, facts in devices.items():
        header.append(f"{device}: {facts['name']}, float32 matmul peak {facts['matmul_gflops']:.1f} GFLOP/s"
                      if facts["present"] else f"{device}: absent ({facts['reason']})")
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for found in result["records"]:
        if found["mode"] != "device":
            rows.setdefault((found["model"], found["mode"]), {})[found["device"]] = found
    names = list(devices)
    lines = ["  \n".join(header), "",
             "| model | mode | " + " | ".join(f"{d} images/s (ms/step)" for d in names) + " | notes |",
             "|---|---|" + "---:|" * len(names) + "---|"]
    for (model, mode), by_device in rows.items():
        cells = ["absent" if not devices[d]["present"] else cell(by_device.get(d)) for d in names]
        lines.append(f"| {model} | {mode} | " + " | ".join(cells) + f" | {notes(list(by_device.values()))} |")
    return "\n".join(lines) + "\n"


def bar_chart(result: dict):
    """Horizontal bars of images/s per model × mode and device, on a log scale (modes differ 1000-fold)."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    measured = [r for r in result["records"] if r["status"] == "ok"]
    labels = list(dict.fromkeys(f"{r['model']} · {r['mode']}" for r in measured))
    devices = list(dict.fromkeys(r["device"] for r in measured))
    height = 0.8 / max(len(devices), 1)
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.32 * len(labels) * max(len(devices), 1)))
    for k, device in enumerate(devices):
        values = {f"{r['model']} · {r['mode']}": r["images_per_s"] for r in measured if r["device"] == device}
        positions = [i + k * height for i, label in enumerate(labels) if label in values]
        bars = axes.barh(positions, [values[label] for label in labels if label in values], height, label=device)
        axes.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    axes.set_yticks([i + height * (len(devices) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_xlabel("images per second (log scale)")
    config = result["meta"]["config"]
    axes.set_title(f"{result['meta']['versions']['backend']}, batch {config['batch_size']}, "
                   f"{config['image_size']} px", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    return figure


def write_report(result: dict, out_dir: str | Path) -> list[Path]:
    """benchmark.json (machines), benchmark.md (the table) and benchmark.png (the bar chart) in `out_dir`."""
    out_dir = Path(out_dir)
    table = markdown_table(result)
    return [write_json(out_dir / "benchmark.json", result),
            write_atomic(out_dir / "benchmark.md", lambda tmp: Path(tmp).write_text(table)),
            save_figure(out_dir / "benchmark.png", bar_chart(result))]


# --- comparing two runs ---------------------------------------------------------------------------------

def load_result(path: str | Path) -> dict:
    """A benchmark.json written by `run` / `write_report`."""
    try:
        result = json.loads(Path(path).read_text())
        records = result["records"]
        if not all({"model", "mode", "device", "status", "images_per_s"} <= set(r) for r in records):
            raise KeyError("a record without model, mode, device, status and images_per_s")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"'{path}' is not a readable benchmark.json ({' '.join(str(error).split())}). "
                        "Pass files written by 'evaluate.py benchmark --out DIR'") from None
    return result


def compare(a: dict, b: dict, price_a: float = PRICES["p3.8xlarge"], price_b: float = PRICES["t3.xlarge"],
            device_a: str = "gpu", device_b: str = "cpu") -> list[dict]:
    """Per model × mode measured in both: A's speed-up over B, and the $ per 1M images on each at $/hour prices."""
    def measured(result: dict, device: str) -> dict[tuple[str, str], float]:
        return {(r["model"], r["mode"]): r["images_per_s"] for r in result["records"]
                if r["status"] == "ok" and r["device"] == device}

    fast, slow = measured(a, device_a), measured(b, device_b)
    shared = [key for key in fast if key in slow]
    if not shared:
        raise DataError(f"the two files share no measurement of A on {device_a} and B on {device_b}. "
                        "Pass a benchmark.json from each machine, or choose --device-a / --device-b")
    return [{"model": model, "mode": mode, "a_images_per_s": fast[model, mode], "b_images_per_s": slow[model, mode],
             "speed_up": fast[model, mode] / slow[model, mode],
             "a_usd_per_million": price_a * 1e6 / fast[model, mode] / 3600,
             "b_usd_per_million": price_b * 1e6 / slow[model, mode] / 3600}
            for model, mode in shared]


def compare_table(rows: list[dict], device_a: str = "gpu", device_b: str = "cpu") -> str:
    lines = [f"{'model':<20}{'mode':<20}{'A ' + device_a + ' img/s':>14}{'B ' + device_b + ' img/s':>14}"
             f"{'speed-up':>10}{'A $/1M img':>12}{'B $/1M img':>12}"]
    lines += [f"{r['model']:<20}{r['mode']:<20}{r['a_images_per_s']:>14,.1f}{r['b_images_per_s']:>14,.1f}"
              f"{r['speed_up']:>9.2f}×{r['a_usd_per_million']:>12.3f}{r['b_usd_per_million']:>12.3f}"
              for r in rows]
    return "\n".join(lines)
