"""Training a classifier from a pretrained encoder (`train.py --model classifier --from RUN`) in two phases.

Phase 1 (epochs 0..freeze_epochs-1): the encoder is frozen and the new head learns at the learning rate. Phase 2
(the rest): the whole network learns at PHASE_TWO_RATE of it. Each phase is one `fit` over its epochs with the
run's callbacks, so history.csv, checkpoint/ and --resume count epochs across both: a run stopped in phase 2
resumes in phase 2, from its checkpoint, with the encoder unfrozen.
"""
from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass

from core.errors import DataError, ModelError
from core.runs import RunFolder, TrainConfig
from zoo.finetune import PHASE_TWO_RATE, compile_phase, encoder_shape, fine_tuned, pretrained_encoder
from zoo.registry import checked_option


@dataclass(frozen=True)
class Phase:
    first: int            # epochs first..last-1
    last: int
    frozen: bool          # the encoder
    learning_rate: float


def check_fine_tune(config: TrainConfig) -> None:
    """The flags of a fine-tuning run, before any data is read; fills the image size and freeze epochs left out."""
    if config.model != "classifier":
        raise ModelError(f"--from fine-tunes a classifier, but --model is '{config.model}'. "
                         "Use --model classifier with --from")
    size, _ = encoder_shape(config.from_run)
    if config.image_size is None:
        config.image_size = size
    if config.image_size != size:
        raise DataError(f"--image-size {config.image_size} differs from the {size} px the encoder of {config.from_run} "
                        f"was trained on. Use --image-size {size}")
    if config.freeze_epochs is None:
        config.freeze_epochs = config.epochs // 2
    if config.freeze_epochs < 0:
        raise DataError(f"--freeze-epochs must be 0 or more, got {config.freeze_epochs}. Use e.g. --freeze-epochs 2")


def build(config: TrainConfig, source, options: dict) -> tuple:
    """The fine-tuned classifier and its options (fine_tuned's defaults, the seed, classes and learning rate the run
    sets, then --option pairs); a DataError when the data's channels are not the encoder's. `options`: the
    classifier's, whose learning rate (its default or --learning-rate) is the head's."""
    _, channels = encoder_shape(config.from_run)
    if source.channels != channels:
        raise DataError(f"dataset '{source.name}' has {source.channels} channel(s) but the encoder of "
                        f"{config.from_run} was trained on {channels}. Use data with {channels} channel(s)")
    defaults = {name: p.default for name, p in inspect.signature(fine_tuned).parameters.items()
                if p.default is not inspect.Parameter.empty}
    unknown = set(config.options) - set(defaults)
    if unknown:
        raise ModelError(f"a fine-tuned classifier has no option {', '.join(sorted(unknown))}. "
                         f"Its options are: {', '.join(defaults)}")
    chosen = {**defaults, "seed": config.seed, "num_classes": len(source.class_names),
              "learning_rate": options["learning_rate"],
              **{key: checked_option("classifier", key, value, defaults[key]) for key, value in config.options.items()}}
    return fine_tuned(pretrained_encoder(config.from_run), **chosen), chosen


def phases(config: TrainConfig, learning_rate: float) -> list[Phase]:
    """The schedule: encoder frozen for freeze_epochs epochs, then unfrozen at PHASE_TWO_RATE of the rate."""
    middle = min(config.freeze_epochs, config.epochs)
    return [phase for phase in (Phase(0, middle, True, learning_rate),
                                Phase(middle, config.epochs, False, learning_rate * PHASE_TWO_RATE))
            if phase.last > phase.first]


def schedule_record(config: TrainConfig, learning_rate: float) -> list[dict]:
    """The schedule as config.json records it."""
    return [{"epochs": [phase.first, phase.last], "encoder": "frozen" if phase.frozen else "trained",
             "learning_rate": phase.learning_rate} for phase in phases(config, learning_rate)]


def finished_epochs(folder: RunFolder) -> int:
    """Epochs the run's checkpoint holds (Keras BackupAndRestore's training_metadata.json), 0 without one."""
    metadata = folder.checkpoint / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0


def fit_in_phases(model, config: TrainConfig, learning_rate: float, folder: RunFolder, **fit_options) -> dict:
    """Both phases' fits, skipping those the checkpoint already finished; their histories joined."""
    history: dict[str, list] = {}
    done = finished_epochs(folder)
    for phase in phases(config, learning_rate):
        if done >= phase.last:
            continue
        compile_phase(model, phase.frozen, phase.learning_rate)
        with warnings.catch_warnings():
            # the phase's new optimizer has other variables than the checkpoint's (saved by the previous phase):
            # Keras then keeps it fresh, as wanted, and warns
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            result = model.fit(initial_epoch=phase.first, epochs=phase.last, **fit_options)
        for name, values in result.history.items():
            history.setdefault(name, []).extend(values)
    return history

