"""The ETH CIL cosmology data as a TFDS dataset: `import datasets.tfds.cil_cosmology` registers `cil_cosmology`."""
from datasets.tfds.cil_cosmology.cil_cosmology_dataset_builder import Builder

__all__ = ["Builder"]
