"""Fits search/encoder_mixture.npz, the model of real encoder vectors behind the benchmark's `encoder` gallery:
`python tools/encoder_mixture.py [--galaxies 30000]` embeds that many built-in synthetic galaxies with the shipped
encoder preset and fits `search.synthetic.fit_encoder_mixture` to their vectors (a few minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.runs import resolve_run  # noqa: E402
from datasets.synthetic_galaxies import SyntheticGalaxies  # noqa: E402
from search.embedding import embed_source, open_run  # noqa: E402
from search.synthetic import ENCODER_MIXTURE, fit_encoder_mixture  # noqa: E402

PRESET = "preset:galaxy-encoder"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--galaxies", type=int, default=30_000, help="synthetic galaxies embedded (30000)")
    parser.add_argument("--vectors", help="an .npy file of vectors to fit instead of embedding galaxies")
    args = parser.parse_args()
    if args.vectors:
        vectors = np.load(args.vectors)
    else:
        run = open_run(resolve_run(PRESET))
        # seed 1: galaxies other than the preset's own training set (seed 0)
        source = SyntheticGalaxies(run.spec.image_size, args.galaxies, seed=1)
        vectors = embed_source(source, {"latent": run.embed}, run.spec)[0]["latent"]
    mixture = fit_encoder_mixture(vectors)
    np.savez(ENCODER_MIXTURE, **mixture, galaxies=len(vectors), encoder=PRESET)
    print(f"wrote {ENCODER_MIXTURE}: {len(vectors):,} vectors of {vectors.shape[1]} dimensions, "
          f"{mixture['explained'][:64].sum():.4f} of their variance in the 64 components kept")


if __name__ == "__main__":
    main()
