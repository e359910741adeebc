"""Training past one device: `train.py --distribute none|mirrored|data-parallel`.

- `mirrored`: tf.distribute.MirroredStrategy (TensorFlow) over the local GPUs, or over N logical CPUs with
  `--devices N` (for tests, and to check a multi-device run on a machine without GPUs). Keras 3's `fit` runs
  under it; `MultiWorkerMirroredStrategy` does not (keras-team/keras#20585), so there is no multi-host TensorFlow.
- `data-parallel`: keras.distribution.DataParallel (JAX) over every device of every process. Several processes
  or hosts join with `--coordinator HOST:PORT --num-processes N --process-id I` (or Keras'
  KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID variables); Keras then shards the tf.data
  pipeline so each process reads its own part of every global batch.

In both, `--batch-size` is the global batch, split over the replicas. Every process runs the same computation
(collectives need all of them), but only process 0 writes the run folder.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field

import keras

from core.errors import UsageError
from core.processes import JOIN_WAIT_S, exit_unless_done_in, wait_for_address
from core.runs import STRATEGIES

COORDINATOR_WAIT_S = JOIN_WAIT_S   # seconds a process waits for the others (JAX alone: 5 min, then a fatal abort)
DISTRIBUTION_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                          "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclass
class Distribution:
    """How a run is spread: the strategy, its replicas (devices over all processes) and this process's place."""

    strategy: str = "none"
    devices: int = 1
    processes: int = 1
    process_id: int = 0
    tf_strategy: object = field(default=None, repr=False)

    @property
    def writes_run(self) -> bool:
        """Only process 0 writes the run folder; the others train alongside it."""
        return self.process_id == 0

    def scope(self):
        """Where models and optimizers are created: MirroredStrategy mirrors the variables made in its scope."""
        return self.tf_strategy.scope() if self.tf_strategy is not None else contextlib.nullcontext()

    def record(self) -> dict:
        """What config.json keeps of it."""
        return {"strategy": self.strategy, "devices": self.devices, "processes": self.processes}


def start(strategy: str = "none", devices: int | None = None, coordinator: str | None = None,
          processes: int | None = None, process_id: int | None = None) -> Distribution:
    """The distribution `strategy` asks for, set up before any model exists; a UsageError for a combination that
    cannot work (the wrong backend, more devices than there are, half of the multi-process flags)."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --distribute '{strategy}'. Choose one of: {', '.join(STRATEGIES)}")
    multi_process = (coordinator, processes, process_id) != (None, None, None)
    if strategy != "data-parallel" and multi_process:
        raise UsageError("--coordinator, --num-processes and --process-id join processes for "
                         "--distribute data-parallel. Add --distribute data-parallel or drop them")
    if strategy == "none":
        if devices not in (None, 1):
            raise UsageError(f"--devices {devices} needs --distribute mirrored or data-parallel. Add one of them")
        return Distribution()
    backend = keras.backend.backend()
    if strategy == "mirrored":
        if backend != "tensorflow":
            raise UsageError(f"--distribute mirrored needs the TensorFlow backend, not {backend}. "
                             "Set KERAS_BACKEND=tensorflow, or use --distribute data-parallel on JAX")
        return mirrored(devices)
    if backend != "jax":
        raise UsageError(f"--distribute data-parallel needs the JAX backend, not {backend}. "
                         "Set KERAS_BACKEND=jax, or use --distribute mirrored on TensorFlow")
    return data_parallel(devices, coordinator, processes, process_id)


def mirrored(devices: int | None) -> Distribution:
    """MirroredStrategy over the local GPUs (the first `devices` of them), or over `devices` logical CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [f"/gpu:{index}" for index in range(len(gpus))]
    elif devices is None:
        raise UsageError("--distribute mirrored found no GPU. Pass --devices N to mirror over N logical CPUs")
    else:
        names = [f"/cpu:{index}" for index in range(logical_cpus(devices))]
    if devices is not None:
        if devices > len(names):
            raise UsageError(f"--devices {devices} asks for more than the {len(names)} devices this machine has. "
                             f"Use --devices {len(names)} or fewer")
        names = names[:devices]
    return Distribution("mirrored", len(names), tf_strategy=mirrored_strategy(tuple(names)))


@functools.cache
def mirrored_strategy(devices: tuple[str, ...]):
    """One MirroredStrategy per set of devices and process: a second one over the same devices numbers its
    collective operations from the start again, and they collide with the first one's."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def logical_cpus(wanted: int) -> int:
    """Splits the CPU into at least `wanted` logical devices, which TensorFlow allows only before it starts; a
    process where it started already keeps the split it has."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) < wanted:
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * wanted)
    return len(tf.config.list_logical_devices("CPU"))


def data_parallel(devices: int | None, coordinator: str | None, processes: int | None,
                  process_id: int | None) -> Distribution:
    """keras.distribution.DataParallel over every device of every process (the first `devices` of them on one
    process); with a coordinator, this process joins the others through jax.distributed first."""
    import jax

    given = (coordinator, processes, process_id)
    joining = given != (None, None, None) or any(os.environ.get(name) for name in DISTRIBUTION_VARIABLES)
    if devices is not None and devices > jax.config.jax_num_cpu_devices:
        with contextlib.suppress(RuntimeError):     # too late once JAX has started: then count what there is
            jax.config.update("jax_num_cpu_devices", devices)
    if joining:
        if None in given and given != (None, None, None):
            raise UsageError("joining processes needs all of --coordinator HOST:PORT, --num-processes N and "
                             "--process-id I. Add the missing ones")
        if processes is not None and not 0 <= process_id < processes:
            raise UsageError(f"--process-id must be from 0 to {processes - 1}, got {process_id}. Number the "
                             "processes 0, 1, ...")
        if coordinator is not None and not coordinator.rpartition(":")[2].isdigit():
            raise UsageError(f"--coordinator must be HOST:PORT, got '{coordinator}'. Use e.g. --coordinator "
                             "host0:1234, the address of process 0")
        if coordinator is not None and process_id != 0:
            wait_for_coordinator(coordinator)
        address = coordinator or os.environ.get(DISTRIBUTION_VARIABLES[0])
        try:
            with exit_unless_done_in(COORDINATOR_WAIT_S, f"the other processes did not join {address} within "
                                     f"{COORDINATOR_WAIT_S:g} s. Start every process, 0 to N-1, with the same "
                                     "--coordinator and --num-processes"):
                keras.distribution.initialize(coordinator, processes, process_id)
        except (RuntimeError, ValueError) as error:
            raise UsageError(f"could not join the other processes ({' '.join(str(error).split())[:200]}). Check "
                             "that process 0 runs and that every process has the same --coordinator and "
                             "--num-processes") from None
    found = jax.devices()
    if devices is not None and not joining:
        if devices > len(found):
            raise UsageError(f"--devices {devices} asks for more than the {len(found)} devices JAX sees. "
                             f"Use --devices {len(found)} or fewer")
        found = found[:devices]
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found))
    return Distribution("data-parallel", len(found), jax.process_count(), jax.process_index())


def wait_for_coordinator(coordinator: str, seconds: float | None = None) -> None:
    """Returns once HOST:PORT accepts a TCP connection, trying for `seconds` (COORDINATOR_WAIT_S); else a
    UsageError. Without it, JAX retries for five minutes and then aborts the process with a fatal error."""
    seconds = COORDINATOR_WAIT_S if seconds is None else seconds
    try:
        wait_for_address(coordinator, seconds)
    except TimeoutError as reason:
        raise UsageError(f"no process 0 answers at --coordinator {coordinator} after {seconds:g} s ({reason}). "
                         "Start process 0 first, with the same --coordinator") from None
