"""The machine a measurement runs on: devices, their names and memory, the float32 matmul peak, precision (the
benchmark's, and the name `evaluate.py serve --measure` records)."""
from __future__ import annotations

import importlib.util
import math
import os
import platform
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
from keras import ops


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
