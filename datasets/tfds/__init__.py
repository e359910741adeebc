"""TensorFlow Datasets builders for the data users download themselves (the manual-download case of TFDS):
galaxy10_decals, galaxy10_sdss and cil_cosmology, one folder each as `tfds new` lays them out, and the source that
lets train.py read any prepared TFDS image dataset (`--dataset tfds:NAME[/CONFIG]`, datasets/tfds/source.py).

Build one with `python -m datasets.tfds build galaxy10_decals --manual_dir DIR` (DIR: the folder holding the file,
or the file itself), or from Python after `import datasets.tfds.galaxy10_decals` with tfds.load. They write TFRecord
files as TFDS does by default (what tfds.load reads); `--file_format array_record` gives files TFDS can also read
by index (tfds.data_source).
"""
