"""Two processes on localhost joined by jax.distributed (`--distribute data-parallel` with a coordinator): they
train the classifier together and end with identical weights, and only process 0 writes the run folder; process 0
alone, with nobody joining, stops with one line after its bounded wait.

The processes run JAX whatever backend this pytest process runs (one launch for the whole file)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.jax]

WORKER = """
import sys
import numpy as np
import datasets, zoo
from core.runs import TrainConfig
from datasets.pipeline import make_dataset
from training import train
from training.distribute import start

process, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
distribution = start("data-parallel", devices=1, coordinator=f"localhost:{port}", processes=2, process_id=process)
with distribution.scope():
    model = zoo.create("classifier", image_size=16, num_classes=5)
np.savez(f"{out}/initial-{process}.npz", *model.get_weights())
source = datasets.load("synthetic-galaxies", image_size=16, limit=48, seed=0)
model.fit(make_dataset(source, image_size=16, batch_size=8, shuffle=True), epochs=1, steps_per_epoch=4, verbose=0)
np.savez(f"{out}/trained-{process}.npz", *model.get_weights())
config = TrainConfig(model="classifier", image_size=16, limit=80, epochs=1, batch_size=8, distribute="data-parallel")
train(config, run_dir=f"{out}/run", verbose=0, distribution=distribution)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("processes")
    port = free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "TMPDIR": str(out)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(process), str(port), str(out)], env=env,
                                cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for process in (0, 1)]
    logs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)
    return out


def weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[name] for name in saved.files]


def test_both_processes_end_with_identical_trained_weights(two_processes):
    initial, first, second = (weights(two_processes / name)
                              for name in ("initial-0.npz", "trained-0.npz", "trained-1.npz"))
    assert any(not np.allclose(before, after) for before, after in zip(initial, first)), "training changed nothing"
    for one, other in zip(first, second):
        np.testing.assert_array_equal(one, other)


def test_only_process_0_writes_the_run_folder(two_processes):
    run = two_processes / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["distribution"] == {"strategy": "data-parallel", "devices": 2, "processes": 2}
    # no samples/: predictions cannot come back to one process when several train together
    assert {p.name for p in run.iterdir()} == {"config.json", "model.keras", "history.csv", "logs", "checkpoint"}
    assert len((run / "history.csv").read_text().splitlines()) == 2      # one epoch, written once
    # process 1 trained in a scratch folder under TMPDIR, deleted when it finished
    assert not list(two_processes.glob("astrozoo-process-*"))


ALONE = """
import sys
import cli, train
import training.distribute
training.distribute.COORDINATOR_WAIT_S = 3
cli.run(lambda: train.main(sys.argv[1:]))
"""


def test_process_0_that_nobody_joins_stops_with_one_line(tmp_path):
    port = free_port()
    flags = ["--model", "classifier", "--limit", "8", "--distribute", "data-parallel", "--coordinator",
             f"localhost:{port}", "--num-processes", "2", "--process-id", "0", "--out", str(tmp_path / "run")]
    alone = subprocess.run([sys.executable, "-c", ALONE, *flags], env={**os.environ, "KERAS_BACKEND": "jax"},
                           cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2, alone.stderr[-2000:]
    assert alone.stderr == (f"error: the other processes did not join localhost:{port} within 3 s. Start every "
                            "process, 0 to N-1, with the same --coordinator and --num-processes\n")
    assert not (tmp_path / "run").exists()
