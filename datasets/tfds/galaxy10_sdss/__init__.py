"""Galaxy10 SDSS as a TFDS dataset: `import datasets.tfds.galaxy10_sdss` registers `galaxy10_sdss`."""
from datasets.tfds.galaxy10_sdss.galaxy10_sdss_dataset_builder import Builder

__all__ = ["Builder"]
