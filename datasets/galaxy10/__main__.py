"""`python -m datasets.galaxy10 --data-dir Galaxy10_DECals.h5 --export DIR [--format png|jpg]`: the HDF5 file as a
folder of images, one sub-folder per class, and galaxies.csv. A command line entry point, the CLI layer."""
from __future__ import annotations

from collections.abc import Sequence

import cli
from core.files import writable
from datasets.galaxy10 import EXPORT_FORMATS, export, open_source


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.Parser(prog="python -m datasets.galaxy10", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="Galaxy10_DECals.h5 or Galaxy10.h5, or their folder")
    parser.add_argument("--export", required=True, metavar="DIR",
                        help="folder to write (resumes when it already holds part of the export)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="png", help="image file format (png)")
    args = parser.parse_args(argv)
    source = open_source(args.data_dir)
    folder = export(source, writable(args.export, "--export"), args.format)
    print(f"wrote {len(source):,} images and galaxies.csv to {folder}")


if __name__ == "__main__":
    cli.run(main)
