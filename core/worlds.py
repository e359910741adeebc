"""The two image worlds (docs/architecture.md) and the sizes and scales fixed by their data, defined once."""
from __future__ import annotations

WORLDS = ("galaxies", "star-fields")
GALAXY_SIZE = 64             # px, the Milky Way seed's training size
FIELD_SIZE = 1000            # px, the side of every star field (CIL cosmology data and the built-in ones)
FIELD_TILE = 256             # px, the tiles the star-field seed's StyleGAN trained on
SCORE_RANGE = (0.0, 8.0)     # the CIL similarity score of a star field, 8 = real
WORLD_IMAGE_SIZES = {"galaxies": GALAXY_SIZE, "star-fields": FIELD_SIZE}    # --image-size when not given
