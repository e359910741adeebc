"""What C and C++ libraries print: held aside, so that a command's own output and its one-line errors stay alone.

TensorFlow's absl start-up lines, Ray's core-worker notes and FAISS' on-disk-list messages are written straight
to file descriptors 1 and 2, below anything Python's logging settings reach.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile

from core.errors import DataError, ModelError, UsageError


@contextlib.contextmanager
def native_output_held(fd: int = 2, python_too: bool = False, replay_on_error: bool = False):
    """Points descriptor `fd` (1: stdout, 2: stderr) at a temporary file while the block runs. Python's own
    sys.stdout / sys.stderr keep writing where they did, through a copy of the old descriptor (unless
    `python_too`: an import's Python warnings are held as well); what was held is dropped, or, with
    `replay_on_error`, replayed if the block fails with something other than the project's input errors."""
    stream_name = "stdout" if fd == 1 else "stderr"
    stream = getattr(sys, stream_name)
    stream.flush()
    saved = os.dup(fd)
    python_side = None
    with contextlib.suppress(AttributeError, OSError, ValueError):   # pytest's capture has no descriptor
        if not python_too and stream.fileno() == fd:
            python_side = os.fdopen(os.dup(saved), "w", buffering=1, encoding=stream.encoding, errors="replace")
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        if python_side is not None:
            setattr(sys, stream_name, python_side)
        replay = False
        try:
            yield
        except (DataError, ModelError, UsageError):
            raise
        except BaseException:
            replay = replay_on_error
            raise
        finally:
            ctypes.CDLL(None).fflush(None)
            if python_side is not None:
                python_side.flush()
                setattr(sys, stream_name, stream)
                python_side.close()
            os.dup2(saved, fd)
            os.close(saved)
            if replay:
                held.seek(0)
                stream.write(held.read().decode(errors="replace"))
                stream.flush()
