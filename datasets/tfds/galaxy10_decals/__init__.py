"""Galaxy10 DECals as a TFDS dataset: `import datasets.tfds.galaxy10_decals` registers `galaxy10_decals`."""
from datasets.tfds.galaxy10_decals.galaxy10_decals_dataset_builder import Builder

__all__ = ["Builder"]
