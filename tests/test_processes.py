"""Bounded waits and no process left behind (core/processes.py): the reaper kills what a SIGKILLed command had
started, a Ray address nobody answers stops `evaluate.py embed` with one line, and a local Ray's processes end
with their command, killed or not, whose stderr holds only its progress bar and its own error line."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

import search.shards
from core.errors import DataError
from core.processes import wait_for_address

ROOT = Path(__file__).parent.parent
MARKER = "ASTROZOO_TEST_PROCESS_MARKER"

STARTS_A_GRANDCHILD = """
import subprocess, sys, time
from core.processes import reap_children_at_exit
reap_children_at_exit()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""

JOINS_A_SILENT_ADDRESS = """
import socket, sys
import cli
cli.import_tensorflow_quietly()
import evaluate
import search.shards
search.shards.JOIN_WAIT_S = 3
with socket.create_server(("127.0.0.1", 0)) as silent:
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    print(address, flush=True)
    cli.run(lambda: evaluate.main(["embed", "--embedding", "pixels", "--limit", "20", "--out", sys.argv[1],
                                   "--address", address]))
"""


def marked_processes(marker: str) -> list[psutil.Process]:
    """Running processes whose environment carries `marker`: a command's descendants, however deep."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except psutil.Error:
            pass
    return found


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def marked_command(argv: list[str], **options) -> tuple[subprocess.Popen, str]:
    marker = uuid.uuid4().hex
    command = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**os.environ, MARKER: marker},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)
    return command, marker


def error_lines(stderr: str) -> list[str]:
    """stderr without the progress bar's redrawn lines."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "img/s" not in line
            and not line.startswith("embedding ")]


def test_the_reaper_kills_what_a_killed_process_had_started():
    command, _ = marked_command(["-c", STARTS_A_GRANDCHILD])
    grandchild = psutil.Process(int(command.stdout.readline()))
    time.sleep(1.5)                                  # the reaper has seen it
    command.send_signal(signal.SIGKILL)
    command.wait(timeout=30)
    assert wait_until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE, 20)


def test_an_address_nobody_answers_stops_after_the_wait():
    with socket.create_server(("127.0.0.1", 0)) as listening:
        wait_for_address(f"127.0.0.1:{listening.getsockname()[1]}", seconds=1)
        free = listening.getsockname()[1]
    with pytest.raises(TimeoutError, match="refused"):
        wait_for_address(f"127.0.0.1:{free}", seconds=1)


def test_embed_on_a_ray_address_nobody_answers_says_so(monkeypatch, tmp_path):
    import ray

    monkeypatch.setattr(search.shards, "JOIN_WAIT_S", 1)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh command, even beside the Ray tests
    with socket.create_server(("127.0.0.1", 0)) as listening:
        free = listening.getsockname()[1]
    with pytest.raises(DataError, match=rf"^no Ray cluster answers at 127.0.0.1:{free} after 1 s \(Connection "
                                        r"refused\)\. Check --address"):
        search.shards.embed_shards(tmp_path / "emb", embedding="pixels", limit=20, address=f"127.0.0.1:{free}")
    assert not (tmp_path / "emb").exists()


@pytest.mark.slow
def test_embed_on_an_address_that_never_lets_it_join_stops_with_one_line(tmp_path):
    command, _ = marked_command(["-c", JOINS_A_SILENT_ADDRESS, str(tmp_path / "emb")])
    out, err = command.communicate(timeout=300)
    assert command.returncode == 2
    assert err == (f"error: the Ray cluster at {out.strip()} did not let this command join within 3 s. Check "
                   "--address (host:port of 'ray start --head'), or leave it out for a local Ray\n")
    assert not (tmp_path / "emb").exists()


@pytest.fixture
def folder_with_a_corrupt_image(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(40):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"g{index:03d}.png")
    (folder / "g020.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return folder


@pytest.mark.ray
@pytest.mark.slow
def test_a_local_ray_failure_prints_one_line_and_leaves_no_process(folder_with_a_corrupt_image, tmp_path):
    command, marker = marked_command(["evaluate.py", "embed", "--embedding", "pixels", "--dataset", "folder",
                                      "--data-dir", str(folder_with_a_corrupt_image), "--image-size", "32",
                                      "--out", str(tmp_path / "emb"), "--workers", "2"])
    _, err = command.communicate(timeout=300)
    assert command.returncode == 2
    assert error_lines(err) == [f"error: image {folder_with_a_corrupt_image / 'g020.png'} cannot be decoded "
                                "(corrupt or not really PNG/JPEG). Replace or remove the file"]
    assert wait_until(lambda: not marked_processes(marker), 30), marked_processes(marker)


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_embed_takes_its_local_ray_down(tmp_path):
    command, marker = marked_command(["evaluate.py", "embed", "--embedding", "pixels", "--limit", "6000",
                                      "--out", str(tmp_path / "emb"), "--workers", "2"])
    working = wait_until(lambda: any(process.name().startswith("ray::MapWorker")
                                     for process in marked_processes(marker)), 240)
    command.kill()
    command.communicate(timeout=60)
    assert working, "no Ray worker started"
    assert wait_until(lambda: not marked_processes(marker), 30), marked_processes(marker)
