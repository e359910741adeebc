"""What train.py and evaluate.py share: one-line errors with exit status 2, and quiet TensorFlow start-up."""
from __future__ import annotations

import argparse
import math
import os
import sys

from core.errors import DataError, ModelError, UsageError
from core.streams import native_output_held

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

__all__ = ["Parser", "UsageError", "fail", "positive_float", "positive_int", "run"]


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
