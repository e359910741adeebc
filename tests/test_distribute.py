"""Training on several devices (training/distribute.py) on the backend this pytest process runs: mirrored on
TensorFlow, data-parallel on JAX (tests/test_backends.py runs this file again on JAX). The CPU is split into two
devices by conftest.py. One step on 2 replicas must equal one step on 1 replica of the same global batch, for
the classifier and for a GAN; train.py records the strategy and the device count.
"""
import json
import socket
import time

import keras
import numpy as np
import pytest

import cli
import train
import zoo
from core.errors import UsageError
from training.distribute import start, wait_for_coordinator
from zoo.layered import CoordinateGAN

STRATEGY = "mirrored" if keras.backend.backend() == "tensorflow" else "data-parallel"
GLOBAL_BATCH = 8


@pytest.fixture(autouse=True)
def no_distribution_left():
    """keras.distribution's setting is global: each test starts and ends without one."""
    keras.distribution.set_distribution(None)
    yield
    keras.distribution.set_distribution(None)


def one_step(devices: int, build, inputs, targets) -> list[np.ndarray]:
    """The weights after one train step on the global batch, with the model built under `devices` replicas."""
    keras.utils.set_random_seed(0)
    distribution = start(STRATEGY, devices=devices)
    assert distribution.devices == devices
    with distribution.scope():
        model = build()
    model.fit(inputs, targets, batch_size=GLOBAL_BATCH, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    weights = [np.asarray(weight) for weight in model.get_weights()]
    keras.distribution.set_distribution(None)
    return weights


def assert_same_step(build, inputs, targets):
    alone, spread = one_step(1, build, inputs, targets), one_step(2, build, inputs, targets)
    initial = (keras.utils.set_random_seed(0), [np.asarray(w) for w in build().get_weights()])[1]
    assert any(not np.allclose(before, after) for before, after in zip(initial, alone)), "the step changed nothing"
    for one, two in zip(alone, spread):
        np.testing.assert_allclose(two, one, atol=1e-5)


@pytest.mark.slow
def test_classifier_step_on_two_replicas_equals_one_replica():
    rng = np.random.default_rng(0)
    images, labels = rng.random((GLOBAL_BATCH, 16, 16, 3), dtype=np.float32), np.arange(GLOBAL_BATCH) % 4
    # no dropout and no random views: dropout masks and views are drawn per replica, the stateless-random parts
    # that cannot agree
    assert_same_step(lambda: zoo.create("classifier", image_size=16, num_classes=4, dropout=0.0, random_views=False),
                     images, labels)


@pytest.mark.slow
def test_gan_step_on_two_replicas_equals_one_replica():
    """The layered model's coordinate DCGAN (dense layers only): the noise of replica r is rows r·4 to r·4 + 4 of
    the global batch's noise, and each replica's losses count for its share of the global batch."""
    def build():
        gan = CoordinateGAN(max_stars=4, latent_dim=4, units=16, seed=0)
        gan.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2))
        return gan

    vectors = np.random.default_rng(1).uniform(-1, 1, (GLOBAL_BATCH, 8)).astype(np.float32)
    assert_same_step(build, vectors, np.zeros(GLOBAL_BATCH))


@pytest.mark.slow
def test_train_cli_records_the_strategy_and_devices(tmp_path, capsys):
    out = tmp_path / "run"
    cli.run(lambda: train.main(["--model", "classifier", "--image-size", "16", "--limit", "80", "--epochs", "1",
                         "--batch-size", "8", "--distribute", STRATEGY, "--devices", "2", "--out", str(out)]))
    config = json.loads((out / "config.json").read_text())
    assert config["distribution"] == {"strategy": STRATEGY, "devices": 2, "processes": 1}
    assert (config["distribute"], config["devices"], config["batch_size"]) == (STRATEGY, 2, 8)
    assert zoo.load(out).classify(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 5)
    assert "done:" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--distribute", "mirrored" if STRATEGY == "data-parallel" else "data-parallel"], "backend"),
    (["--distribute", STRATEGY, "--devices", "64"], "--devices 64 asks for more than the 2 devices"),
    (["--devices", "2"], "--devices 2 needs --distribute mirrored or data-parallel"),
    (["--distribute", STRATEGY, "--devices", "2", "--batch-size", "1"], "--batch-size 1 is smaller than the 2 devices"),
    (["--coordinator", "localhost:1"], "--coordinator, --num-processes and --process-id join processes"),
    (["--distribute", "data-parallel", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
     "--coordinator must be HOST:PORT" if STRATEGY == "data-parallel" else "needs the JAX backend"),
    (["--distribute", "data-parallel", "--coordinator", "localhost:1"], None),
])
def test_impossible_distributions_stop_with_one_line(flags, message, tmp_path, capsys):
    keras.ops.zeros(1)      # the backend has started, with conftest's 2 devices, whatever ran before this test
    if message is None:     # half of the joining flags (only checked where data-parallel can start: JAX)
        message = "joining processes needs all of" if STRATEGY == "data-parallel" else "needs the JAX backend"
    with pytest.raises(SystemExit) as stop:
        cli.run(lambda: train.main(["--model", "classifier", "--limit", "8", "--out", str(tmp_path / "run"), *flags]))
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_coordinator_nobody_answers_stops_in_bounded_time():
    with socket.create_server(("127.0.0.1", 0)) as listening:
        wait_for_coordinator(f"127.0.0.1:{listening.getsockname()[1]}", seconds=1)
        free = listening.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(UsageError, match=rf"^no process 0 answers at --coordinator 127.0.0.1:{free} after 1 s \("
                                         r".*\)\. Start process 0 first, with the same --coordinator$"):
        wait_for_coordinator(f"127.0.0.1:{free}", seconds=1)
    assert time.monotonic() - started < 5


def test_composite_models_do_not_distribute(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.run(lambda: train.main(["--model", "naive", "--dataset", "star-fields", "--limit", "2", "--distribute",
                             STRATEGY, "--devices", "2", "--out", str(tmp_path / "run")]))
    assert "--distribute do not apply to it" in capsys.readouterr().err


def test_unknown_strategy_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown --distribute 'ring'"):
        start("ring")


@pytest.mark.slow
def test_benchmark_reports_images_per_second_and_efficiency_per_device_count(tmp_path, capsys):
    import evaluate

    cli.run(lambda: evaluate.main(["benchmark", "--distribute", STRATEGY, "--replicas", "1,2", "--models",
                                   "classifier", "--image-size", "16", "--batch-size", "8", "--steps", "2",
                                   "--warmup", "1", "--out", str(tmp_path)]))
    result = json.loads((tmp_path / "scaling.json").read_text())
    one, two = result["records"]
    assert (result["strategy"], one["devices"], two["devices"]) == (STRATEGY, 1, 2)
    assert one["images_per_s"] > 0 and two["images_per_s"] > 0
    assert one["scaling_efficiency"] == 1.0
    assert two["scaling_efficiency"] == pytest.approx(two["images_per_s"] / (2 * one["images_per_s"]))
    table = (tmp_path / "scaling.md").read_text()
    assert f"| classifier | {one['images_per_s']:.1f} (1.00) | {two['images_per_s']:.1f} " in table
    assert table in capsys.readouterr().out
