"""Training runs: a config, a run folder, and the fit that fills it. Importable from notebooks."""
from core.runs import TrainConfig, load_config
from training.run import train

__all__ = ["TrainConfig", "load_config", "train"]
