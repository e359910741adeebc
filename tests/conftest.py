"""Shared test set-up: quiet TensorFlow, Agg plots, the CPU split in two devices, one random seed per test, tiny
in-memory galaxy sources, one local Ray for the session (its tests marked `ray` and kept in one pytest-xdist
worker), a runner for CLI errors, folder listings, a tiny trained classifier run."""
import logging
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
# The tests compile many tiny programs, each run a few times: XLA's quickest compile halves the JAX tests' time
# (here and in the JAX processes they start, which inherit it).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cli  # noqa: E402
from datasets.source import ArraySource  # noqa: E402

REPLICAS = 2    # the CPU is split into this many devices before the backend starts, for the distribution tests


def split_the_cpu(devices: int) -> None:
    """TensorFlow: `devices` logical CPUs; JAX: `devices` CPU devices. Work not placed on a device runs on the
    first one, so only the tests that ask for replicas notice."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    else:
        import jax

        jax.config.update("jax_num_cpu_devices", devices)


def pytest_configure(config):
    """The CPU is split before any test module starts the backend, in every process that runs tests: not in
    pytest-xdist's controller, which only hands the tests out (and so never imports Keras)."""
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        return
    split_the_cpu(REPLICAS)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests that use the local_ray fixture are marked `ray`. Under pytest-xdist (`--dist loadgroup`), all the Ray
    tests run in one worker, which starts one Ray, and the other tests of a file run in one worker, which builds
    the file's module fixtures (tiny trained runs) once."""
    for item in items:
        if "local_ray" in item.fixturenames:
            item.add_marker(pytest.mark.ray)
        if config.pluginmanager.hasplugin("xdist"):
            item.add_marker(pytest.mark.xdist_group("ray" if item.get_closest_marker("ray") else item.path.name))


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same Python, NumPy and backend random state, whatever ran before it."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def tiny_images():
    """8 random RGB images of 16×16 in [0, 1] and labels 0..3."""
    rng = np.random.default_rng(0)
    return rng.random((8, 16, 16, 3), dtype=np.float32), np.arange(8) % 4


@pytest.fixture
def striped_source():
    """A labeled in-memory source whose classes differ in structure (stripe direction), 24×24 uint8."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 60, (40, 24, 24, 3), dtype=np.uint8)
    labels = np.arange(40) % 2
    images[labels == 0, ::4] = 220
    images[labels == 1, :, ::4] = 220
    return ArraySource(images, labels, ("rows", "columns"), name="stripes")


@pytest.fixture
def striped_folder(tmp_path, striped_source):
    """The striped images as PNG files in class sub-folders (rows/, columns/), a real `folder` dataset."""
    images, labels = striped_source.read(0, len(striped_source))
    for k, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "stripes" / striped_source.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{k:02d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return tmp_path / "stripes"


@pytest.fixture(scope="session")
def simclr_run(tmp_path_factory):
    """A simclr run of one short epoch on 200 built-in 16 px galaxies: an encoder to fine-tune (feature_dim 32)."""
    from core.runs import TrainConfig
    from training import train

    run = tmp_path_factory.mktemp("simclr") / "run"
    train(TrainConfig(model="simclr", dataset="synthetic-galaxies", image_size=16, limit=200, batch_size=16, epochs=1,
                      steps_per_epoch=2, options={"feature_dim": 32}), run, verbose=0)
    return run


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray of 2 CPUs for the whole session (starting one takes seconds); the code under test joins it."""
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_line_error(capfd):
    """`one_line_error(main, argv)` runs a CLI's main through cli.run and returns its stderr, checked to be one
    `error: ` line, no traceback, exit status 2 (captured at the file-descriptor level, from the call on)."""
    def run(main, argv: list[str]) -> str:
        capfd.readouterr()
        with pytest.raises(SystemExit) as stopped:
            cli.run(lambda: main(argv))
        err = capfd.readouterr().err
        assert stopped.value.code == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    return run


def listings(folders) -> dict:
    """The names in each folder: equal listings before and after a command mean it wrote nothing there."""
    return {str(folder): sorted(path.name for path in Path(folder).iterdir()) for folder in folders}


def train_tiny_classifier(run_dir, limit: int, seed: int):
    """A one-epoch 16 px classifier run folder on the first `limit` built-in galaxies, for tests that read runs."""
    from core.runs import TrainConfig
    from training import train

    train(TrainConfig(model="classifier", limit=limit, image_size=16, epochs=1, batch_size=16, seed=seed),
          run_dir=run_dir, verbose=0)
    return run_dir
