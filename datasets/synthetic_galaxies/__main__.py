"""`python -m datasets.synthetic_galaxies --preview galaxies.png`: a grid of examples per class and the Milky Way.
A command line entry point (the CLI layer), so it may use evaluation/preview.py; the package itself never does."""
from __future__ import annotations

from collections.abc import Sequence

import cli
from datasets.synthetic_galaxies import __doc__ as about


def main(argv: Sequence[str] | None = None) -> None:
    from evaluation.preview import save_galaxy_preview

    parser = cli.Parser(prog="python -m datasets.synthetic_galaxies", description=about.splitlines()[0])
    parser.add_argument("--preview", required=True, metavar="OUT.png", help="write a grid of examples per class")
    parser.add_argument("--size", type=cli.positive_int, default=64, help="image size in px (64)")
    parser.add_argument("--per-class", type=cli.positive_int, default=8, help="images per class (8)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (0)")
    args = parser.parse_args(argv)
    save_galaxy_preview(args.preview, size=args.size, per_class=args.per_class, seed=args.seed)
    print(f"wrote {args.preview}")


if __name__ == "__main__":
    cli.run(main)
