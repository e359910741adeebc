"""`python -m datasets.tfds build NAME --manual_dir DIR [--data_dir DIR]`: prepares one of the zoo's TFDS datasets
from the user's download, as `tfds build` would (TFDS 4.9's own `tfds` command cannot start without Apache Beam
installed). A command line entry point, the CLI layer."""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import cli
from core.errors import DataError
from core.files import remove

BUILDERS = ("galaxy10_decals", "galaxy10_sdss", "cil_cosmology")
FILE_FORMATS = ("tfrecord", "array_record")


def build(name: str, manual_dir: str, data_dir: str | None = None, file_format: str = "tfrecord"):
    """Registers and prepares dataset `name` from `manual_dir` into `data_dir` (TFDS' default when None), in
    `file_format` (tfrecord or array_record); `manual_dir` may also name the downloaded file itself."""
    import tensorflow_datasets as tfds

    module = importlib.import_module(f"datasets.tfds.{name}")
    if Path(manual_dir).is_file():
        manual_dir = str(Path(manual_dir).parent)
    if not Path(manual_dir).is_dir() or not any(Path(manual_dir).iterdir()):
        raise DataError(f"--manual_dir {manual_dir} is not a folder holding the download. "
                        f"{module.Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    builder = tfds.builder(name, data_dir=data_dir, file_format=file_format)
    root = Path(builder.data_dir_root)
    created = [folder for folder in (root / name, root / "downloads", root) if not folder.exists()]
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except BaseException:
        for folder in created:      # TFDS leaves its empty folders behind a failed build
            remove(folder)
        raise
    return builder


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.Parser(prog="python -m datasets.tfds", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cli.Parser)
    command = commands.add_parser("build", help="prepare a dataset from the user's download")
    command.add_argument("name", choices=BUILDERS, help="the dataset to prepare")
    command.add_argument("--manual_dir", "--manual-dir", required=True,
                         help="the downloaded file, or the folder that holds it (CIL: the cosmology folder)")
    command.add_argument("--data_dir", "--data-dir", help="where TFDS keeps prepared datasets (~/tensorflow_datasets)")
    command.add_argument("--file_format", "--file-format", choices=FILE_FORMATS, default=FILE_FORMATS[0],
                         help="tfrecord (what tfds.load reads, the default) or array_record (also read by index)")
    args = parser.parse_args(argv)
    builder = build(args.name, args.manual_dir, args.data_dir, args.file_format)
    splits = ", ".join(f"{split} {info.num_examples:,}" for split, info in builder.info.splits.items())
    print(f"prepared {args.name} in {builder.data_dir}: {splits}")


if __name__ == "__main__":
    cli.run(main)
