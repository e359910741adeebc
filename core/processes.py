"""Bounded waits on other processes, and no helper process left behind.

A command that joins other processes (JAX's coordinator, a Ray cluster) waits for them at most a minute and then
stops with one line, and a command that starts a local Ray takes Ray's helper processes down with it, even when it
is killed with SIGKILL: Ray's node agents outlive their raylet otherwise.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

JOIN_WAIT_S = 60     # seconds a command waits for an address or for other processes before it stops

REAPER = """
import os, select, sys, time
import psutil

parent = psutil.Process(int(sys.argv[1]))
me = os.getpid()
seen = {}
while True:
    try:
        for child in parent.children(recursive=True):
            if child.pid != me:
                seen[child.pid] = child
    except psutil.NoSuchProcess:
        break
    if select.select([sys.stdin], [], [], 0.5)[0] and not sys.stdin.buffer.read1(1):
        break
time.sleep(1)                        # a normal exit: Ray's own shutdown goes first
left = [process for process in seen.values() if process.is_running()]
for process in left:
    try:
        process.kill()
    except psutil.Error:
        pass
psutil.wait_procs(left, timeout=10)
"""


def wait_for_address(address: str, seconds: float = JOIN_WAIT_S) -> None:
    """Returns once HOST:PORT accepts a TCP connection, trying for `seconds`; else a TimeoutError whose text is
    the last reason (e.g. "Connection refused"), for the caller's own message."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise TimeoutError(error.strerror or str(error)) from None
            time.sleep(0.5)


@contextlib.contextmanager
def exit_unless_done_in(seconds: float, message: str):
    """Ends the process with `error: <message>` and exit status 2 if the block has not finished after `seconds`.

    For calls that block in C++ past any Python exception: jax.distributed's connect (which aborts the process
    with a fatal error after five minutes) and ray.init on an address that never answers (which retries forever).
    Callers use it before they write anything, so nothing is left half-written."""
    def give_up():
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def reap_children_at_exit() -> subprocess.Popen:
    """Starts a watcher that, once this process has ended in any way (SIGKILL included), kills every process it
    had started meanwhile, however deep, that is still running. It learns of this process's end from the pipe
    only this process holds open."""
    return subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
