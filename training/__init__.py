"""Training runs: a config, a run folder, and the fit that fills it. Importable from notebooks."""
from core.runs import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config", "train"]


def __getattr__(name: str):
    """`train` on first use: training.run imports TensorFlow (the tf.data pipeline), which training.distribute
    does not need, so the scaling benchmark (`evaluate.py benchmark --distribute data-parallel`) runs where only
    JAX is installed."""
    if name == "train":
        from training.run import train

        globals()["train"] = train
        return train
    raise AttributeError(f"module 'training' has no attribute '{name}'")
