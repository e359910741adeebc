"""What train.py and evaluate.py share: one-line errors with exit status 2, and quiet TensorFlow start-up."""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")


class UsageError(ValueError):
    """A bad flag value; the message says what to do."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors follow the project's one-line `error: <what>. <what to do>` contract."""

    def error(self, message: str):
        fail(f"{message}. Run 'python {self.prog} --help' for the flags")


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run(main) -> None:
    """Calls main(), turning the project's input errors into one stderr line and exit status 2."""
    from datasets.source import DataError
    from zoo.registry import ModelError

    try:
        main()
    except (DataError, ModelError, UsageError) as exc:
        fail(str(exc))
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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value
