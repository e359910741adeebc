"""What train.py and evaluate.py share: one-line errors with exit status 2, quiet TensorFlow start-up, the
argparse types of every flag, and the dataset flags."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from core.errors import DataError, ModelError, UsageError
from core.streams import native_output_held

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

__all__ = ["Parser", "UsageError", "add_dataset_flags", "fail", "key_value", "names", "names_from", "port_number",
           "positive_float", "positive_int", "run", "sizes", "whole_numbers"]


class Parser(argparse.ArgumentParser):
    """argparse whose errors follow the project's one-line `error: <what>. <what to do>` contract."""

    def error(self, message: str):
        command = self.prog if self.prog.startswith("python ") else f"python {self.prog}"
        fail(f"{message}. Run '{command} --help' for the flags")


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with standard error held aside.

    TensorFlow 2.21 writes absl start-up lines (oneDNN, CUDA drivers) to stderr before any log level can
    apply, which would break the one-line error contract; they are replayed only if the import fails.
    A machine without TensorFlow (JAX only) skips it.
    """
    with native_output_held(2, python_too=True, replay_on_error=True):
        try:
            import tensorflow  # noqa: F401
        except ModuleNotFoundError:
            pass  # a JAX-only machine: nothing to quiet, and models run without TensorFlow


def run(main) -> None:
    """Calls main(), turning the project's input errors into one stderr line and exit status 2. A file the
    command cannot create or read (a read-only --out, a file where a folder should be) is a bad input too."""
    import_tensorflow_quietly()
    try:
        main()
    except (DataError, ModelError, UsageError) as exc:
        fail(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        fail(f"cannot use{where} ({exc.strerror or exc}). Check the path and that you may write there")
    except KeyboardInterrupt:
        fail("interrupted. Resume a training run with --resume RUN_DIR")


def positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got '{text}'")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def whole_numbers(text: str) -> tuple[int, ...]:
    """Comma-separated whole numbers such as 1,2."""
    try:
        numbers = tuple(int(item) for item in text.split(","))
    except ValueError:
        numbers = None
    if numbers is None:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas such as 1,2, got '{text}'")
    return numbers


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names, spaces and empty items dropped: 'classifier, vae' → ('classifier', 'vae')."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def names_from(allowed: tuple[str, ...], what: str):
    """A type for comma-separated names out of `allowed`, e.g. --devices cpu,gpu."""
    def parse(text: str) -> tuple[str, ...]:
        given = names(text)
        unknown = [name for name in given if name not in allowed]
        if unknown or not given:
            raise argparse.ArgumentTypeError(f"unknown {what} '{','.join(unknown) or text}', "
                                             f"use some of {','.join(allowed)}")
        return given

    return parse


def sizes(text: str) -> tuple[int, ...]:
    """Comma-separated counts of at least 1000, k and M allowed, such as 100k,1M,10M."""
    scale = {"k": 1_000, "m": 1_000_000}
    try:
        counts = tuple(int(float(item[:-1]) * scale[item[-1].lower()]) if item[-1].lower() in scale else int(item)
                       for item in (part.strip() for part in text.split(",")) if item)
    except (ValueError, IndexError):
        counts = ()
    if not counts or min(counts) < 1_000:
        raise argparse.ArgumentTypeError(f"expected sizes of at least 1000 such as 100k,1M, got '{text}'")
    return counts


def port_number(text: str) -> int:
    """A TCP port: 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got '{text}'")
    return int(text)


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it parses (numbers, true/false), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


DATASET_FLAGS = {       # which images are read, then how they are prepared; in the order --help lists them
    "dataset": dict(help="dataset source (see 'python train.py --list')"),
    "data_dir": dict(help="file or folder the dataset reads (galaxy10: the .h5 file)"),
    "classes": dict(help="keep these classes, comma-separated names or indices, e.g. 2,5,6"),
    "limit": dict(type=positive_int, help="use only the first N images"),
    "image_size": dict(type=positive_int, help="square size in px"),
    "tile": dict(type=positive_int,
                 help="cut each image into TILE×TILE tiles that cover it, e.g. --tile 256 for star fields"),
    "crop": dict(type=positive_float, help="keep this central fraction of each image before resizing, e.g. 0.5"),
}


def add_dataset_flags(parser: argparse.ArgumentParser, *flags: str, default: str | None = "synthetic-galaxies",
                      dataset_help: str | None = None, image_size_help: str | None = None) -> None:
    """The dataset flags (DATASET_FLAGS, all unless `flags` names some), the same type and meaning in every command.
    `default` is --dataset's default (None: the run's); a command may say in `dataset_help` and `image_size_help`
    what its dataset and default size are."""
    for name in flags or DATASET_FLAGS:
        options = dict(DATASET_FLAGS[name])
        if name == "dataset":
            options.update(default=default, help=dataset_help or options["help"])
        if name == "image_size" and image_size_help:
            options["help"] = image_size_help
        parser.add_argument("--" + name.replace("_", "-"), **options)
