"""The benchmark's settings and constants: devices, modes, prices, memory limits."""
from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("cpu", "gpu")
MODES = ("train", "infer", "generate", "fit", "pipeline")
SCALE_MODES = ("search", "embed")  # not per model, and long: only when asked for (evaluation/benchmark/search.py)
INFERENCE_CAPABILITIES = ("classify", "encode", "reconstruct", "score")
MEASURED_MODES = {"fit": ("fit-in-memory", "fit-pipeline")}  # measurements that give more than one record
MATMUL_SIZE = {"cpu": 2048, "gpu": 8192}
MIXED_POLICY = {"cpu": "mixed_bfloat16", "gpu": "mixed_float16"}  # CPUs lack fast float16 kernels
PRICES = {"p3.8xlarge": 12.24, "t3.xlarge": 0.17}  # $/hour, the star-field seed's Table I
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
