"""One training run: open the data, build the model, fit, and fill the run folder.

Run folder (docs/architecture.md): config.json (every option and default, the package versions), model.keras,
history.csv (with per-epoch `seconds`), logs/ (TensorBoard), samples/ (per-epoch grids / confusion
matrices) and checkpoint/ (weights, optimizer state and epoch, from Keras' BackupAndRestore) for --resume.
Everything that can be wrong with the input is checked before the folder is created.

Composite models (zoo/parts.py: the statistical star-field models and the scorers) train through the same
`train` by their protocol: `fit_source` on whole images of the training split, history.csv from the rows it
logs, samples/ from `sample_grids` and model/ from `save`. Such runs have no logs/ or checkpoint/.

Models with the `score` capability learn from a dataset's scored images (`datasets.load(..., scored=True)`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import keras
import numpy as np

import datasets
import zoo
from core.errors import DataError, ModelError
from core.files import make_folder, process_runs, remove, writable, write_atomic, write_json, write_png
from core.runs import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, RunFolder, TrainConfig
from core.worlds import WORLD_IMAGE_SIZES
from datasets.pipeline import data_errors, few_labels, make_dataset, split_indices, stitch_tiles, tile_offsets, to_numpy
from datasets.source import Subset
from training.callbacks import CollapseMonitor, EpochTimer, KnnMonitor, SampleWriter, StopOnNonFinite
from training.distribute import Distribution, start
from training.finetune import build as build_fine_tuned
from training.finetune import check_fine_tune, fit_in_phases, schedule_record
from zoo.parts import CompositeModel
from zoo.registry import MAX_SEED

MAX_SAMPLE_IMAGES = 2000
LOCK_FILE = ".training.lock"


def versions() -> dict[str, str]:
    import h5py
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
            "tensorflow": tf.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "h5py": h5py.__version__, "platform": platform.platform()}


def model_options(config: TrainConfig, source: datasets.Source, train_rows: np.ndarray | None = None) -> dict:
    """The builder options this run sets: the data decides size, channels and classes; flags the rest.
    `train_rows`: the training rows when they are not the whole training split (--labels-per-class)."""
    entry = zoo.get_entry(config.model)
    one_pass = (steps_per_pass(len(source), config) if train_rows is None
                else max(1, -(-len(train_rows) // config.batch_size)))
    derived = {"image_size": config.image_size, "channels": source.channels, "seed": config.seed,
               "epochs": config.epochs, "batch_size": config.batch_size,
               "steps_per_epoch": config.steps_per_epoch or one_pass}
    if "num_classes" in entry.defaults:
        if not source.labeled:
            raise DataError(f"model '{config.model}' needs labels but dataset '{source.name}' is unlabeled. "
                            "Use a labeled dataset (synthetic-galaxies, galaxy10, a folder with class sub-folders)")
        derived["num_classes"] = len(source.class_names)
    if config.learning_rate is not None:
        derived["learning_rate"] = config.learning_rate
    options = {k: v for k, v in derived.items() if k in entry.defaults}
    return {**entry.defaults, **options, **config.options}


def steps_per_pass(n_images: int, config: TrainConfig) -> int:
    """Batches in one pass over the training split (images, not tiles): the length of an epoch, for models whose
    learning-rate schedule counts steps."""
    n_train = len(split_indices(n_images, "train", config.validation_fraction, config.seed))
    return max(1, -(-n_train // config.batch_size))


def resolve_recipe(config: TrainConfig) -> None:
    """Fills the epochs and batch size the flags left out with the model's own (its builder's `epochs` and
    `batch_size`, or an --option of that name), else DEFAULT_EPOCHS and DEFAULT_BATCH_SIZE."""
    own = {**zoo.get_entry(config.model).defaults, **config.options}
    if config.epochs is None:
        config.epochs = own.get("epochs", DEFAULT_EPOCHS)
    if config.batch_size is None:
        config.batch_size = own.get("batch_size", DEFAULT_BATCH_SIZE)


def check(config: TrainConfig) -> None:
    """The run's own options; each model checks the image sizes it supports when it is built."""
    if not 0 <= config.seed <= MAX_SEED:
        raise DataError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {config.seed}. Use e.g. --seed 0")
    if config.epochs <= 0:
        raise DataError(f"--epochs must be at least 1, got {config.epochs}. Use e.g. --epochs 10")
    if config.from_run is None and config.freeze_epochs is not None:
        raise DataError(f"--freeze-epochs {config.freeze_epochs} applies only when fine-tuning. "
                        "Add --from RUN_OR_PRESET or drop --freeze-epochs")
    if not 0 < config.validation_fraction < 1:
        raise DataError(f"--validation-fraction must be between 0 and 1, got {config.validation_fraction}. "
                        "Use e.g. 0.1")
    if config.labels_per_class is not None and "classify" not in zoo.get_entry(config.model).capabilities:
        raise DataError(f"--labels-per-class trains on a few labeled images, but model '{config.model}' does not "
                        "classify. Use --model classifier")


def new_run_dir(model: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(root) / f"{model}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(root) / f"{model}-{stamp}-{suffix}"
    return run_dir


def train(config: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
          verbose: int | str = "auto", distribution: Distribution | None = None) -> tuple[Path, dict]:
    """Trains config.model and writes the run folder; returns it and the final epoch's metrics.

    resume=True continues the run in `run_dir` from its last finished epoch (weights, optimizer and epoch
    counter come back from checkpoint/) until config.epochs. `distribution` (training/distribute.py): one
    started for several processes; by default the one config.distribute names, on this process alone. A shipped
    preset (core.runs) is read-only, so it is refused as `run_dir`.
    """
    if run_dir is not None and (shipped := RunFolder(run_dir)).preset:
        raise ModelError(f"preset '{shipped.preset}' ships with astrozoo and is read-only, so train.py does not write "
                         f"into it. Train your own run with 'python train.py --model {config.model}', or copy "
                         f"{shipped.root} to a folder of your own and --resume that")
    resolve_recipe(config)
    if config.from_run is not None:
        check_fine_tune(config)
    if config.image_size is None:
        config.image_size = config.tile or WORLD_IMAGE_SIZES[zoo.get_entry(config.model).world]
    check(config)
    distribution = distribution or start(config.distribute, config.devices)
    if config.batch_size < distribution.devices:
        raise DataError(f"--batch-size {config.batch_size} is smaller than the {distribution.devices} devices, and "
                        f"each needs images every step. Use --batch-size {distribution.devices} or more")
    config.devices = distribution.devices
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config.model)
    if not distribution.writes_run:
        with tempfile.TemporaryDirectory(prefix=f"astrozoo-process-{distribution.process_id}-") as scratch:
            return run_dir, train_beside(config, run_dir, Path(scratch), resume, verbose, distribution)
    writable(run_dir)
    keras.utils.set_random_seed(config.seed)
    source = datasets.load(config.dataset, data_dir=config.data_dir, image_size=config.image_size,
                           seed=config.seed, classes=config.classes, limit=config.limit,
                           scored="score" in zoo.get_entry(config.model).capabilities)
    train_rows = (None if config.labels_per_class is None
                  else few_labels(source, config.labels_per_class, config.validation_fraction, config.seed))
    options = model_options(config, source, train_rows)
    with distribution.scope():
        if config.from_run is not None:
            model, options = build_fine_tuned(config, source, options)
        else:
            model = zoo.create(config.model, **options)
    capabilities = zoo.get_entry(config.model).capabilities
    composite = isinstance(model, CompositeModel)
    if not composite:
        common = dict(image_size=config.image_size, crop=config.crop, tile=config.tile, batch_size=config.batch_size,
                      seed=config.seed, validation_fraction=config.validation_fraction,
                      drop_remainder=whole_batches_only(config, source, distribution))
        train_data = make_dataset(source if train_rows is None else Subset(source, train_rows),
                                  split="train" if train_rows is None else None, shuffle=True, augment=config.augment,
                                  repeat=config.steps_per_epoch is not None, **common)
        validation_data = make_dataset(source, split="validation", **common)
    elif resume or config.tile or config.crop or config.distribute != "none":
        raise ModelError(f"model '{config.model}' trains on whole images in one go, so --resume, --tile, --crop "
                         "and --distribute do not apply to it. Train it again without them")

    folder = RunFolder(run_dir)
    schedule = {"schedule": schedule_record(config, options["learning_rate"])} if config.from_run else {}
    if resume:
        saved = folder.read_config()
        check_checkpoint(folder)
    with claimed(folder, resume):
        if resume:
            write_json(folder.config, {**resumed_config(saved, config), **schedule})
        else:
            write_json(folder.config, {
                **dataclasses.asdict(config), "model_options": options, "world": zoo.get_entry(config.model).world,
                "capabilities": list(capabilities), "class_names": list(source.class_names),
                "n_images": len(source), "command": sys.argv, "versions": versions(),
                "distribution": distribution.record(),
                **schedule,
            })
        if composite:
            return run_dir, _fit_parts(config, source, model, folder, verbose)
        return run_dir, _fit(config, source, model, options, capabilities, train_data, validation_data, folder,
                             verbose, inspect_samples=distribution.processes == 1)


def whole_batches_only(config: TrainConfig, source, distribution: Distribution) -> bool:
    """keras.distribution splits every batch evenly over the devices and processes, so data-parallel training
    drops a last partial batch; the validation split must then hold at least one whole batch."""
    if distribution.strategy != "data-parallel":
        return False
    held_out = len(split_indices(len(source), "validation", config.validation_fraction, config.seed))
    if held_out < config.batch_size:
        raise DataError(f"--distribute data-parallel uses whole batches only, and the validation split has "
                        f"{held_out} images, fewer than --batch-size {config.batch_size}. Raise "
                        "--validation-fraction or --limit, or lower --batch-size")
    return True


def train_beside(config: TrainConfig, run_dir: Path, scratch: Path, resume: bool, verbose,
                 distribution: Distribution) -> dict:
    """A process other than 0 trains alongside process 0, computing exactly what it computes (the collectives
    need every process), but into a scratch folder that is deleted afterwards. To resume, it starts from a copy
    of the run's checkpoint, which process 0 restores too (a shared file system for several hosts)."""
    if resume:
        shutil.copytree(RunFolder(run_dir).checkpoint, RunFolder(scratch / "run").checkpoint)
        shutil.copy(RunFolder(run_dir).config, RunFolder(scratch / "run").config)
    as_writer = dataclasses.replace(distribution, process_id=0)
    return train(config, scratch / "run", resume, verbose=0, distribution=as_writer)[1]


@contextmanager
def claimed(folder: RunFolder, resume: bool):
    """Holds the run folder for this process while it trains.

    The folder is created (or an existing empty one taken) and a lock file made in it exclusively, so a second
    train.py into the same --out stops at once instead of racing this one. When training fails, what it wrote
    goes: the whole folder of a new run (or its contents, when --out was an existing empty folder) unless a
    checkpoint was saved for --resume; a resumed run keeps everything.
    """
    existed = folder.root.exists()
    make_folder(folder.root)
    lock = folder.root / LOCK_FILE
    take_lock(lock)
    try:
        if not resume and any(entry.name != LOCK_FILE for entry in folder.root.iterdir()):
            raise ModelError(f"run folder '{folder.root}' already exists and is not empty. "
                             "Choose another --out or continue it with --resume")
        yield
    except BaseException:
        if not resume and not folder.checkpoint.exists():
            for entry in folder.root.iterdir():
                if entry.name != LOCK_FILE:
                    remove(entry)
        raise
    finally:
        lock.unlink(missing_ok=True)
        if not existed and not any(folder.root.iterdir()):
            folder.root.rmdir()


def take_lock(lock: Path) -> None:
    """Creates `lock` exclusively with this process id in it; a lock left by a process that no longer runs (a
    killed training) is taken over, one held by a running process stops this one."""
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock.read_text().strip()
            if holder.isdigit() and process_runs(int(holder)):
                raise ModelError(f"run folder '{lock.parent}' is being written by another train.py (process "
                                 f"{holder}). Choose another --out or wait for it to finish") from None
            lock.unlink(missing_ok=True)
            continue
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        return
    raise ModelError(f"could not take the lock {lock}. Choose another --out")


def check_checkpoint(folder: RunFolder) -> None:
    """Reads every file of the run's checkpoint/ (Keras BackupAndRestore: weights in HDF5, the epoch in JSON), so
    a damaged checkpoint stops a --resume before anything in the run changes. A run killed in its first epoch
    has config.json but no checkpoint yet: it resumes from epoch 0."""
    files = sorted(folder.checkpoint.glob("*")) if folder.checkpoint.is_dir() else []
    try:
        for path in files:
            if path.suffix == ".h5":
                with h5py.File(path, "r") as weights:
                    weights.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
            elif path.suffix == ".json":
                json.loads(path.read_text())
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"the checkpoint in '{folder.checkpoint}' is damaged ({' '.join(str(error).split())}). "
                         "Train the run again with a new --out") from None


def resumed_config(saved: dict, config: TrainConfig) -> dict:
    """config.json of a resumed run: what it was trained with, the new number of epochs, and every resume's
    command line kept in `resumed` (the first command stays in `command`)."""
    resumes = [*saved.get("resumed", []), {"command": sys.argv, "epochs": config.epochs,
                                           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    return {**saved, "epochs": config.epochs, "resumed": resumes}


def _fit(config, source, model, options, capabilities, train_data, validation_data, folder: RunFolder,
         verbose, inspect_samples: bool = True) -> dict:
    """Keras fit with the run folder's callbacks. `inspect_samples=False` (a run over several processes) leaves
    out the per-epoch samples/ and the monitors that predict on them: Keras on several JAX processes cannot
    return predictions to one process."""
    learning_rate = options.get("learning_rate")
    callbacks = [
        StopOnNonFinite(f"Lower --learning-rate (it was {learning_rate:g})" if learning_rate
                        else "Check the data and the options"),
        keras.callbacks.BackupAndRestore(str(folder.checkpoint), delete_checkpoint=False),
        EpochTimer(),
        *(sample_callbacks(config, source, capabilities, validation_data, folder) if inspect_samples else []),
        keras.callbacks.CSVLogger(str(folder.history), append=True),
        keras.callbacks.TensorBoard(str(folder.logs)),
    ]
    fit_options = dict(x=train_data, validation_data=validation_data, steps_per_epoch=config.steps_per_epoch,
                       callbacks=callbacks, verbose=verbose, shuffle=False)  # make_dataset already shuffles
    with data_errors():
        if config.from_run is not None:
            history = fit_in_phases(model, config, learning_rate, folder, **fit_options)
        else:
            history = model.fit(epochs=config.epochs, **fit_options).history
    if config.tile and "generate" in capabilities and inspect_samples:
        write_png(folder.samples / "stitched.png", stitched_image(model, source, config))
    write_atomic(folder.model, model.save)
    return {name: float(values[-1]) for name, values in history.items() if values}


def sample_callbacks(config: TrainConfig, source, capabilities, validation_data, folder: RunFolder) -> list:
    """samples/ per epoch (grids, confusion matrices), and for generators and encoders their monitors."""
    sample_batches = -(-MAX_SAMPLE_IMAGES // config.batch_size)
    validation_images, validation_labels = to_numpy(validation_data.take(sample_batches))
    return [
        SampleWriter(folder.samples, capabilities, validation_images, validation_labels, source.class_names,
                     seed=config.seed, log_dir=folder.logs / "samples"),
        *([CollapseMonitor(validation_images, seed=config.seed)] if "generate" in capabilities else []),
        *([knn_monitor(config, source, validation_images, validation_labels, sample_batches)]
          if "encode" in capabilities and len(validation_labels) and validation_labels.min() >= 0 else []),
    ]


def knn_monitor(config: TrainConfig, source, validation_images, validation_labels, batches: int) -> KnnMonitor:
    """k-NN accuracy of the validation images against up to MAX_SAMPLE_IMAGES training images (the first ones,
    unaugmented), for encoders trained on labeled data."""
    reference = make_dataset(source, split="train", image_size=config.image_size, crop=config.crop, tile=config.tile,
                             batch_size=config.batch_size, seed=config.seed,
                             validation_fraction=config.validation_fraction, cache=False)
    with data_errors():
        reference_images, reference_labels = to_numpy(reference.take(batches))
    return KnnMonitor(reference_images, reference_labels, validation_images, validation_labels)


def stitched_image(model, source, config: TrainConfig) -> np.ndarray:
    """A whole image (a 1000×1000 star field for --tile 256) from generated tiles, laid out and blended where
    they overlap as `make_dataset(tile=...)` cuts them, at the generated tiles' scale."""
    height, width = np.asarray(source.read(0, 1)[0][0]).shape[:2]
    height, width = (round(side * config.image_size / config.tile) for side in (height, width))
    count = len(tile_offsets(height, config.image_size)) * len(tile_offsets(width, config.image_size))
    return stitch_tiles(model.generate(count, seed=config.seed), height, width)


def _fit_parts(config, source, model: CompositeModel, folder: RunFolder, verbose) -> dict:
    """A composite model: `fit_source` on the training split, then history.csv from its rows, samples/ from
    `sample_grids` and model/ from `save`."""
    rows: list[dict] = []
    train_rows, validation_rows = (Subset(source, split_indices(len(source), split, config.validation_fraction,
                                                                config.seed)) for split in ("train", "validation"))
    model.fit_source(train_rows, validation=validation_rows, epochs=config.epochs, batch_size=config.batch_size,
                     steps_per_epoch=config.steps_per_epoch, seed=config.seed, log=rows.append, verbose=verbose)
    write_atomic(folder.history, lambda tmp: Path(tmp).write_text(history_csv(rows)))
    for name, image in model.sample_grids(seed=config.seed).items():
        write_png(folder.samples / f"{name}.png", image)
    save_parts(model, folder.parts)
    return {k: v for k, v in (rows[-1] if rows else {}).items() if isinstance(v, float)}


def history_csv(rows: list[dict]) -> str:
    """CSV text of history rows whose keys may differ by stage (columns: their union, in order of appearance)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def save_parts(model, folder: Path) -> None:
    """`model.save` into a temporary folder beside `folder`, then renamed: model/ is never half-written."""
    def write(staging: str) -> None:
        os.mkdir(staging)
        model.save(staging)

    write_atomic(folder, write)
