"""`evaluate.py benchmark --distribute STRATEGY --replicas 1,2`: training images/s of each model on 1, 2, ...
devices under train.py's distribution (training/distribute.py), and the scaling efficiency.

A measurement is Keras `fit` (StyleGAN at its full resolution) over `steps` global batches of `batch_size`
synthetic images, after an untimed epoch that compiles. The global batch stays the same for every device count
(train.py's --batch-size), so N devices each get batch_size / N images a step. Efficiency at N devices =
images/s at N / (N × images/s at the first count). On one CPU split into logical devices the replicas share the
same cores: the point there is that the step runs and agrees (tests/test_distribute.py), not a speed-up, which
needs real devices.
"""
from __future__ import annotations

import keras
import numpy as np

import zoo
from core.machine import versions
from core.tables import markdown_table
from evaluation.benchmark.config import BenchmarkConfig
from evaluation.benchmark.inputs import model_image_size, synthetic_images, synthetic_labels
from evaluation.benchmark.measure import build, elapsed
from training.distribute import start

SCALING_MODELS = ("classifier", "stylegan")


def measure_scaling(config: BenchmarkConfig, strategy: str, replicas: tuple[int, ...], progress=print) -> dict:
    """benchmark.json-like result: one record per model and device count, with `scaling_efficiency`."""
    start(strategy, devices=max(replicas))     # makes the logical devices while the backend can still split
    keras.distribution.set_distribution(None)
    records = []
    for name in config.models:
        entry = zoo.get_entry(name)
        size = model_image_size(entry, config)
        images = synthetic_images(entry.world, config.batch_size, size, 3, config.seed)
        labels = synthetic_labels(entry, config.batch_size, config.seed)
        first = None
        for count in replicas:
            record = measure_one(name, size, images, labels, strategy, count, config)
            first = first or record
            record["scaling_efficiency"] = record["images_per_s"] / (count / first["devices"] * first["images_per_s"])
            records.append(record)
            progress(f"{name:<12} {count} × {record['device_kind']}: {record['images_per_s']:8.1f} images/s, "
                     f"efficiency {record['scaling_efficiency']:.2f}")
    return {"strategy": strategy, "replicas": list(replicas), "batch_size": config.batch_size, "steps": config.steps,
            "backend": keras.backend.backend(), "versions": versions(), "records": records}


def measure_one(name: str, size: int, images: np.ndarray, labels: np.ndarray, strategy: str, count: int,
                config: BenchmarkConfig) -> dict:
    keras.utils.set_random_seed(config.seed)
    distribution = start(strategy, devices=count)
    try:
        with distribution.scope():
            model = build(name, config, **full_resolution(name, size))
        def epoch(steps: int):
            """`steps` copies of the batch from memory: no tf.data, so it runs where only JAX is installed."""
            model.fit(np.concatenate([images] * steps), np.concatenate([labels] * steps),
                      batch_size=len(images), epochs=1, shuffle=False, verbose=0)

        compile_s = elapsed(lambda: epoch(max(1, config.warmup))).wall
        took = elapsed(lambda: epoch(config.steps))
    finally:
        keras.distribution.set_distribution(None)
    return {"model": name, "strategy": strategy, "devices": count, "device_kind": device_kind(distribution),
            "images_per_s": config.batch_size * config.steps / took.wall,
            "ms_per_step": 1000 * took.wall / config.steps, "compile_s": compile_s,
            "batch_size": config.batch_size, "image_size": size, "steps": config.steps}


def full_resolution(name: str, size: int) -> dict:
    """StyleGAN grows from 4×4; its scaling is timed on the full-resolution step, the one that costs."""
    return {"start_size": size} if "start_size" in zoo.get_entry(name).defaults else {}


def device_kind(distribution) -> str:
    if distribution.tf_strategy is not None:
        return distribution.tf_strategy.extended.worker_devices[0].split("device:")[-1].split(":")[0].lower()
    import jax

    return jax.devices()[0].platform


def scaling_table(result: dict) -> str:
    """Markdown: images/s and efficiency per model and device count."""
    counts = result["replicas"]
    rows = []
    for name in dict.fromkeys(record["model"] for record in result["records"]):
        cells = {record["devices"]: record for record in result["records"] if record["model"] == name}
        rows.append((name, *(f"{cells[c]['images_per_s']:.1f} ({cells[c]['scaling_efficiency']:.2f})" for c in counts)))
    return markdown_table(("model", *(f"{count} device(s): images/s (efficiency)" for count in counts)), rows)
