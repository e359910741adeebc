"""Training runs: a config, a run folder, and the fit that fills it. Importable from notebooks."""
from training.run import TrainConfig, load_config, train

__all__ = ["TrainConfig", "load_config", "train"]
