"""Galaxy10 HDF5 source: small files in the real DECals / SDSS layouts, read back exactly, and every broken file
stopped up front with a DataError that names the problem."""
import pickle

import h5py
import numpy as np
import pytest

import datasets
from core.errors import DataError
from datasets import galaxy10

DECALS_LABELS = np.array([2, 5, 0, 5, 9, 2], dtype=np.uint8)


def decals_images(n=6, size=256):
    """Image i is filled with value 10*i + channel, with its row index written into pixel (0, 0, 0)."""
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    images[:] = (10 * np.arange(n)[:, None] + np.arange(3))[:, None, None, :]
    images[:, 1, 2, 0] = 200 + np.arange(n)
    return images


def write_h5(path, **datasets_by_key):
    with h5py.File(path, "w") as h5:
        for key, values in datasets_by_key.items():
            h5[key] = values
    return path


@pytest.fixture
def decals_file(tmp_path):
    n = len(DECALS_LABELS)
    return write_h5(tmp_path / "Galaxy10_DECals.h5", images=decals_images(), ans=DECALS_LABELS,
                    ra=np.linspace(150.0, 155.0, n), dec=np.linspace(-1.0, 1.0, n),
                    redshift=np.arange(n) / 100.0, pxscale=np.full(n, 0.262))


@pytest.fixture
def sdss_file(tmp_path):
    images = np.zeros((4, 69, 69, 3), dtype=np.uint8)
    images[:, 34, 34] = [[255, 128, 0]]
    images[3, 0, 0] = [1, 2, 3]
    return write_h5(tmp_path / "Galaxy10.h5", images=images, ans=np.array([1, 1, 7, 0], dtype=np.uint8))


def test_decals_file_reads_back_images_labels_and_class_names(decals_file):
    source = galaxy10.open_source(data_dir=str(decals_file))
    assert (source.name, source.variant, len(source), source.channels) == ("galaxy10", "decals", 6, 3)
    assert source.class_names == galaxy10.DECALS_CLASSES
    assert source.class_names[2] == "Round Smooth" and source.class_names[5] == "Barred Spiral"
    labels = source.labels()
    assert labels.dtype == np.int64 and labels.tolist() == DECALS_LABELS.tolist()
    images, block_labels = source.read(2, 5)
    assert images.shape == (3, 256, 256, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, decals_images()[2:5])
    assert images[1, 100, 100].tolist() == [30, 31, 32] and images[1, 1, 2, 0] == 203
    assert block_labels.tolist() == [0, 5, 9]


def test_decals_metadata_follows_the_indices_given(decals_file):
    source = galaxy10.open_source(data_dir=decals_file)
    metadata = source.metadata(np.array([4, 0, 4]))
    assert set(metadata) == {"ra", "dec", "redshift", "pxscale"}
    np.testing.assert_allclose(metadata["ra"], [154.0, 150.0, 154.0])
    np.testing.assert_allclose(metadata["dec"], [0.6, -1.0, 0.6])
    np.testing.assert_allclose(metadata["redshift"], [0.04, 0.0, 0.04])
    np.testing.assert_allclose(metadata["pxscale"], [0.262] * 3)


def test_sdss_file_is_detected_by_size_and_has_no_metadata(sdss_file):
    source = galaxy10.open_source(data_dir=sdss_file)
    assert (source.name, source.variant, len(source)) == ("galaxy10", "sdss", 4)
    assert source.class_names == galaxy10.SDSS_CLASSES and len(source.class_names) == 10
    assert source.class_names[0] == "Disk, Face-on, No Spiral"
    assert source.class_names[9] == "Disk, Face-on, Loose Spiral"
    images, labels = source.read(0, 4)
    assert images.shape == (4, 69, 69, 3)
    assert images[0, 34, 34].tolist() == [255, 128, 0] and images[3, 0, 0].tolist() == [1, 2, 3]
    assert labels.tolist() == [1, 1, 7, 0]
    assert source.metadata(np.array([0, 1])) == {}


def test_a_folder_holding_one_galaxy10_file_is_accepted(decals_file):
    assert galaxy10.open_source(data_dir=decals_file.parent).path == decals_file


def test_a_folder_holding_both_files_is_ambiguous(decals_file, sdss_file):
    with pytest.raises(DataError, match="holds both Galaxy10_DECals.h5 and Galaxy10.h5"):
        galaxy10.open_source(data_dir=decals_file.parent)


def test_reads_survive_closing_and_pickling(decals_file):
    source = galaxy10.open_source(data_dir=decals_file)
    source.close()
    np.testing.assert_array_equal(source.read(5, 6)[0], decals_images()[5:6])
    copy = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(copy.read(0, 2)[0], decals_images()[:2])
    assert copy.labels().tolist() == DECALS_LABELS.tolist()


def test_load_selects_classes_by_index_and_name_and_limits(decals_file):
    source = datasets.load("galaxy10", data_dir=str(decals_file), classes="2,5")
    assert source.class_names == ("Round Smooth", "Barred Spiral")
    assert source.labels().tolist() == [0, 1, 1, 0]          # rows 0, 1, 3, 5
    images, labels = source.read(0, 4)
    assert [image[1, 2, 0] for image in images] == [200, 201, 203, 205]
    assert labels.tolist() == [0, 1, 1, 0]
    assert source.metadata(np.array([2]))["redshift"].tolist() == [0.03]

    by_name = datasets.load("galaxy10", data_dir=str(decals_file), classes="Barred Spiral,Round Smooth", limit=3)
    assert by_name.class_names == ("Barred Spiral", "Round Smooth")
    assert by_name.labels().tolist() == [1, 0, 0]


def test_load_rejects_unknown_class_names(decals_file):
    with pytest.raises(DataError, match="unknown class 'Spiral'"):
        datasets.load("galaxy10", data_dir=str(decals_file), classes="Spiral")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"Galaxy10 file .*nope\.h5 does not exist\. Download"):
        galaxy10.open_source(data_dir=tmp_path / "nope.h5")


def test_folder_without_galaxy10_file(tmp_path):
    with pytest.raises(DataError, match="holds neither Galaxy10_DECals.h5 nor Galaxy10.h5"):
        galaxy10.open_source(data_dir=tmp_path)


@pytest.mark.parametrize("content", [b"ra,dec\n1,2\n", b"\x89PNG\r\n\x1a\n" + bytes(100), b""])
def test_not_an_hdf5_file(tmp_path, content):
    path = tmp_path / "Galaxy10_DECals.h5"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"Galaxy10_DECals\.h5 is not an HDF5 file"):
        galaxy10.open_source(data_dir=path)


def test_truncated_file(decals_file):
    content = decals_file.read_bytes()
    decals_file.write_bytes(content[:len(content) // 2])
    with pytest.raises(DataError, match=r"Galaxy10_DECals\.h5 is truncated or corrupt .*Download it again"):
        galaxy10.open_source(data_dir=decals_file)


@pytest.mark.parametrize("missing, present", [("images", "ans, ra"), ("ans", "images, ra")])
def test_missing_key_is_named_with_the_keys_present(tmp_path, missing, present):
    columns = {"images": decals_images(2), "ans": np.array([1, 2], np.uint8), "ra": np.zeros(2)}
    del columns[missing]
    path = write_h5(tmp_path / "g.h5", **columns)
    with pytest.raises(DataError, match=rf"g\.h5 has no dataset '{missing}' \(keys present: {present}\)"):
        galaxy10.open_source(data_dir=path)


def test_images_of_wrong_dtype(tmp_path):
    path = write_h5(tmp_path / "g.h5", images=np.zeros((2, 69, 69, 3), np.float32), ans=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="'images' in .*g.h5 has dtype float32, expected uint8"):
        galaxy10.open_source(data_dir=path)


@pytest.mark.parametrize("shape", [(2, 69, 69), (2, 69, 69, 4)])
def test_images_of_wrong_shape(tmp_path, shape):
    path = write_h5(tmp_path / "g.h5", images=np.zeros(shape, np.uint8), ans=np.zeros(2, np.uint8))
    shape_text = ", ".join(map(str, shape))
    with pytest.raises(DataError, match=rf"has shape \({shape_text}\), expected \(N, height, width, 3\)"):
        galaxy10.open_source(data_dir=path)


def test_labels_and_images_of_different_lengths(tmp_path):
    path = write_h5(tmp_path / "g.h5", images=decals_images(6), ans=np.zeros(5, np.uint8))
    with pytest.raises(DataError, match="has 6 images but 'ans' has 5 labels"):
        galaxy10.open_source(data_dir=path)


def test_file_with_zero_images(tmp_path):
    path = write_h5(tmp_path / "g.h5", images=np.zeros((0, 256, 256, 3), np.uint8), ans=np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="holds zero images"):
        galaxy10.open_source(data_dir=path)


def test_label_outside_0_to_9(tmp_path):
    path = write_h5(tmp_path / "g.h5", images=decals_images(3), ans=np.array([1, 12, 3], np.uint8))
    with pytest.raises(DataError, match="'ans' in .*g.h5 has label 12 at index 1 .*outside 0-9"):
        galaxy10.open_source(data_dir=path)


def test_load_without_data_dir_asks_for_it():
    with pytest.raises(DataError, match="needs --data-dir"):
        datasets.load("galaxy10")
