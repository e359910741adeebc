"""The TFDS builders (datasets/tfds/), on dummy data written here in the real formats: TFDS' own builder test
case for each, the array_record build the zoo reads by index, `--dataset tfds:NAME` in train.py, the build
command's errors, and the Galaxy10 export to an image folder (datasets/galaxy10)."""
import csv
import tempfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tensorflow_datasets as tfds

import datasets
import train
from datasets.galaxy10 import DECALS_CLASSES, DECALS_FILE, SDSS_FILE, Galaxy10, class_folder, export
from datasets.galaxy10.__main__ import main as galaxy10_main
from datasets.star_fields import write_cil
from datasets.tfds import cil_cosmology, galaxy10_decals, galaxy10_sdss
from datasets.tfds.__main__ import main as tfds_main
from datasets.tfds.builders import held_out_rows

DUMMY_DATA = Path(tempfile.mkdtemp(prefix="astrozoo-tfds-dummy-"))


def write_galaxy10(path: Path, n: int, size: int, metadata: bool = True) -> Path:
    """A Galaxy10-layout HDF5 file: images whose first pixel is the row number, labels row % 10, ra = row."""
    images = np.random.default_rng(0).integers(0, 255, (n, size, size, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=images, chunks=(1, size, size, 3))
        h5["ans"] = (np.arange(n) % 10).astype(np.uint8)
        if metadata:
            for key, scale in (("ra", 1.0), ("dec", -1.0), ("redshift", 0.01), ("pxscale", 0.262)):
                h5[key] = np.arange(n) * scale
    return path


(DUMMY_DATA / "decals").mkdir()
write_galaxy10(DUMMY_DATA / "decals" / DECALS_FILE, 10, 256)
(DUMMY_DATA / "sdss").mkdir()
write_galaxy10(DUMMY_DATA / "sdss" / SDSS_FILE, 10, 69, metadata=False)
write_cil(DUMMY_DATA / "cil", n=2, n_scored=3, n_query=1)


class BuilderTestCase(tfds.testing.DatasetBuilderTestCase):
    def test_session(self, *args, **kwargs):
        return super().test_session(*args, **kwargs)

    test_session.__test__ = False       # tf.test.TestCase's helper, which pytest would collect as a skipped test


class Galaxy10DecalsTest(BuilderTestCase):
    DATASET_CLASS = galaxy10_decals.Builder
    EXAMPLE_DIR = str(DUMMY_DATA / "decals")
    SPLITS = {"train": 9, "test": 1}


class Galaxy10SDSSTest(BuilderTestCase):
    DATASET_CLASS = galaxy10_sdss.Builder
    EXAMPLE_DIR = str(DUMMY_DATA / "sdss")
    SPLITS = {"train": 9, "test": 1}


class CILCosmologyTest(BuilderTestCase):
    DATASET_CLASS = cil_cosmology.Builder
    EXAMPLE_DIR = str(DUMMY_DATA / "cil")
    SPLITS = {"labeled": 2, "scored": 3, "query": 1}


del BuilderTestCase      # only its subclasses are tests


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """galaxy10_decals built as array_record, read by index, from a file of 20 rows."""
    manual = tmp_path_factory.mktemp("download")
    write_galaxy10(manual / DECALS_FILE, 20, 256)
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    tfds_main(["build", "galaxy10_decals", "--manual_dir", str(manual / DECALS_FILE), "--data_dir", str(data_dir),
               "--file_format", "array_record"])
    return data_dir


def test_the_split_is_fixed_and_ten_percent_test():
    assert held_out_rows(20).sum() == 2 and np.array_equal(held_out_rows(20), held_out_rows(20))
    assert held_out_rows(1000).sum() == 100


@pytest.mark.slow
def test_a_prepared_dataset_holds_every_row_once_with_its_features(prepared):
    builder = tfds.builder("galaxy10_decals", data_dir=str(prepared))
    assert builder.info.file_format.value == "array_record"
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {"train": 18, "test": 2}
    assert builder.info.features["label"].names == list(DECALS_CLASSES)
    examples = [example for split in ("train", "test") for example in builder.as_data_source(split=split)]
    assert sorted(int(example["index"]) for example in examples) == list(range(20))
    for example in examples:
        row = int(example["index"])
        assert example["image"].shape == (256, 256, 3) and example["image"][0, 0, 0] == row
        assert example["label"] == row % 10 and example["ra"] == row
        assert example["redshift"] == pytest.approx(row * 0.01)
    test_indices = sorted(int(example["index"]) for example in builder.as_data_source(split="test"))
    assert test_indices == np.flatnonzero(held_out_rows(20)).tolist()


def test_tfds_load_from_python_with_a_manual_dir(tmp_path):
    manual = tmp_path / "download"
    manual.mkdir()
    write_galaxy10(manual / SDSS_FILE, 10, 69, metadata=False)
    test = tfds.load("galaxy10_sdss", split="test", data_dir=str(tmp_path / "data"),
                     download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                         manual_dir=str(manual))})
    (example,) = tfds.as_numpy(test)
    assert np.isnan(example["redshift"]) and example["image"].shape == (69, 69, 3)
    assert example["label"] == example["index"] % 10


@pytest.mark.slow
def test_train_py_reads_a_prepared_tfds_dataset(prepared, tmp_path):
    source = datasets.load("tfds:galaxy10_decals", data_dir=str(prepared))
    assert len(source) == 18 and source.class_names == DECALS_CLASSES and source.channels == 3
    images, labels = source.read(3, 7)
    assert images.shape == (4, 256, 256, 3)
    assert labels.tolist() == [int(image[0, 0, 0]) % 10 for image in images]
    run_dir = tmp_path / "run"
    train.main(["--model", "classifier", "--dataset", "tfds:galaxy10_decals", "--data-dir", str(prepared),
                "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--out", str(run_dir)])
    assert (run_dir / "model.keras").is_file()


def test_a_tfrecord_dataset_is_read_in_order(tmp_path):
    manual = tmp_path / "download"
    manual.mkdir()
    write_galaxy10(manual / SDSS_FILE, 10, 69, metadata=False)
    tfds_main(["build", "galaxy10_sdss", "--manual_dir", str(manual), "--data_dir", str(tmp_path / "data")])
    source = datasets.load("tfds:galaxy10_sdss", data_dir=str(tmp_path / "data"))
    assert not source.random_access
    first, later = source.read(0, 3)[0], source.read(5, 9)[0]
    again = source.read(1, 2)[0]        # before the last row read: starts over
    rows = [int(image[0, 0, 0]) for image in (*first, *later)]
    assert len(set(rows)) == 7 and int(again[0][0, 0, 0]) == rows[1]
    assert source.labels().tolist() == [int(image[0, 0, 0]) % 10 for image in source.read(0, 9)[0]]


def test_an_unprepared_dataset_says_how_to_build_it(tmp_path, one_line_error):
    err = one_line_error(train.main, ["--model", "classifier", "--dataset", "tfds:galaxy10_decals",
                                      "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")])
    assert err.startswith("error: TFDS dataset 'galaxy10_decals' ")
    assert "python -m datasets.tfds build galaxy10_decals --manual_dir DOWNLOAD" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_build_without_the_download_leaves_nothing(tmp_path, one_line_error):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "notes.txt").write_text("not the file")
    err = one_line_error(tfds_main, ["build", "galaxy10_decals", "--manual_dir", str(tmp_path / "download"),
                                     "--data_dir", str(tmp_path / "data")])
    assert err == (f"error: {tmp_path / 'download'} holds none of {DECALS_FILE}. Download it and pass its folder or "
                   "the file with --manual_dir\n")
    assert not (tmp_path / "data").exists()
    (tmp_path / "download" / DECALS_FILE).write_text("not HDF5")
    err = one_line_error(tfds_main, ["build", "galaxy10_decals", "--manual_dir", str(tmp_path / "download"),
                                     "--data_dir", str(tmp_path / "data")])
    assert err.startswith(f"error: {tmp_path / 'download' / DECALS_FILE} is not an HDF5 file. ")
    assert err.endswith(" and pass its path with --manual_dir\n")
    assert not (tmp_path / "data").exists()
    err = one_line_error(tfds_main, ["build", "galaxy10_decals", "--manual_dir", str(tmp_path / "nowhere")])
    assert err.startswith(f"error: --manual_dir {tmp_path / 'nowhere'} is not a folder holding the download. "
                          "Download Galaxy10_DECals.h5")


def test_export_writes_class_folders_and_a_table_and_resumes(tmp_path):
    h5 = write_galaxy10(tmp_path / DECALS_FILE, 12, 32)
    out = tmp_path / "export"
    galaxy10_main(["--data-dir", str(h5), "--export", str(out)])
    assert class_folder(5, DECALS_CLASSES) == "05_barred_spiral"
    with open(out / "galaxies.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows[:2]] == ["00_disturbed/00000.png", "01_merging/00001.png"]
    assert rows[11]["class"] == "Merging" and float(rows[11]["ra"]) == 11 and float(rows[3]["pxscale"]) == 0.786
    image = cv2.imread(str(out / rows[7]["path"]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(image[..., ::-1], Galaxy10(h5).read(7, 8)[0][0])

    kept = out / rows[4]["path"]
    kept.write_bytes(b"left as it is")       # resuming keeps files that are there, writes the missing ones
    (out / rows[9]["path"]).unlink()
    export(Galaxy10(h5), out, progress=False)
    assert kept.read_bytes() == b"left as it is" and (out / rows[9]["path"]).is_file()
    folder = datasets.load("folder", data_dir=str(out))
    assert len(folder) == 12 and folder.class_names[5] == "05_barred_spiral"


def test_export_refuses_an_unwritable_folder(tmp_path, one_line_error):
    h5 = write_galaxy10(tmp_path / DECALS_FILE, 2, 32)
    (tmp_path / "a-file").write_text("x")
    err = one_line_error(galaxy10_main, ["--data-dir", str(h5), "--export", str(tmp_path / "a-file" / "out")])
    assert err == (f"error: cannot write to {tmp_path / 'a-file' / 'out'} ({tmp_path / 'a-file'} is a file, not a "
                   "folder). Choose a --export you can write to\n")
