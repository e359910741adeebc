"""galaxy10_decals: 17,736 galaxies of 256×256 RGB from the DESI Legacy Imaging Surveys, 10 Galaxy Zoo classes."""
from __future__ import annotations

from datasets.galaxy10 import DECALS_CLASSES, DECALS_FILE
from datasets.tfds.builders import Galaxy10Builder


class Builder(Galaxy10Builder):
    """Galaxy10 DECals from the user's Galaxy10_DECals.h5."""

    FILE_NAME = DECALS_FILE
    IMAGE_SIZE = 256
    CLASS_NAMES = DECALS_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download Galaxy10_DECals.h5 (2.5 GB) from https://astronn.readthedocs.io/en/latest/galaxy10.html and pass "
        "the folder that holds it (or the file itself) as --manual_dir, e.g. "
        "`python -m datasets.tfds build galaxy10_decals --manual_dir ~/Downloads`.")
