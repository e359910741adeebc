"""galaxy10_sdss: 21,785 galaxies of 69×69 RGB from the Sloan Digital Sky Survey, 10 Galaxy Zoo classes."""
from __future__ import annotations

from datasets.galaxy10 import SDSS_CLASSES, SDSS_FILE, SDSS_IMAGE_SIZE
from datasets.tfds.builders import Galaxy10Builder


class Builder(Galaxy10Builder):
    """Galaxy10 SDSS from the user's Galaxy10.h5."""

    FILE_NAME = SDSS_FILE
    IMAGE_SIZE = SDSS_IMAGE_SIZE
    CLASS_NAMES = SDSS_CLASSES
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download Galaxy10.h5 (200 MB) from https://astronn.readthedocs.io/en/latest/galaxy10sdss.html and pass "
        "the folder that holds it (or the file itself) as --manual_dir, e.g. "
        "`python -m datasets.tfds build galaxy10_sdss --manual_dir ~/Downloads`.")
