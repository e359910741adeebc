"""Folder source: PNG/JPEG files in class sub-folders or loose, read back as RGB, with DataErrors naming the file."""
import cv2
import numpy as np
import pytest

import datasets
from core.errors import DataError
from datasets import folder


def write_image(path, rgb):
    """Writes an RGB (or grayscale) uint8 array losslessly as PNG, via imencode so any path works."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    encoded.tofile(path)
    return path


def solid(rgb, size=(8, 8)):
    return np.full((*size, 3), rgb, dtype=np.uint8)


@pytest.fixture
def labeled_folder(tmp_path):
    write_image(tmp_path / "spiral" / "b.png", solid((0, 0, 255)))
    write_image(tmp_path / "spiral" / "a.PNG", solid((255, 0, 0)))
    write_image(tmp_path / "elliptical" / "é1.png", solid((0, 255, 0)))
    (tmp_path / "notes").mkdir()                      # a sub-folder without images is not a class
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    return tmp_path


def test_class_sub_folders_give_sorted_class_names_and_labels(labeled_folder):
    source = folder.open_source(data_dir=str(labeled_folder))
    assert (source.name, len(source), source.channels) == ("folder", 3, 3)
    assert source.class_names == ("elliptical", "spiral")
    assert source.labels().dtype == np.int64 and source.labels().tolist() == [0, 1, 1]
    images, labels = source.read(0, 3)
    assert isinstance(images, np.ndarray) and images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    assert [image[0, 0].tolist() for image in images] == [[0, 255, 0], [255, 0, 0], [0, 0, 255]]
    assert labels.tolist() == [0, 1, 1]
    assert source.metadata(np.array([2, 0]))["path"].tolist() == ["spiral/b.png", "elliptical/é1.png"]


def test_pure_red_png_reads_as_red_in_channel_0(tmp_path):
    write_image(tmp_path / "red.png", solid((255, 0, 0)))
    image = folder.open_source(data_dir=tmp_path).read(0, 1)[0][0]
    assert image[..., 0].min() == 255 and image[..., 1:].max() == 0


def test_loose_images_are_unlabeled_and_may_differ_in_size(tmp_path):
    write_image(tmp_path / "b.png", solid((10, 20, 30), (5, 7)))
    cv2.imwrite(str(tmp_path / "a.jpg"), solid((0, 0, 0), (12, 12)))
    write_image(tmp_path / "c.png", np.arange(16, dtype=np.uint8).reshape(4, 4))      # grayscale
    source = datasets.load("folder", data_dir=str(tmp_path))
    assert source.class_names == () and not source.labeled
    assert source.labels().tolist() == [-1, -1, -1]
    images, labels = source.read(0, 3)
    assert [image.shape for image in images] == [(12, 12, 3), (5, 7, 3), (4, 4, 3)]
    assert all(image.dtype == np.uint8 for image in images)
    assert images[1][4, 6].tolist() == [10, 20, 30]
    assert images[2][3, 3].tolist() == [15, 15, 15]
    assert labels.tolist() == [-1, -1, -1]


def test_load_selects_classes_and_limits(labeled_folder):
    source = datasets.load("folder", data_dir=str(labeled_folder), classes="spiral", limit=1)
    assert source.class_names == ("spiral",)
    images, labels = source.read(0, 1)
    assert images[0][0, 0].tolist() == [255, 0, 0] and labels.tolist() == [0]


def test_corrupt_image_is_named_when_read(tmp_path):
    write_image(tmp_path / "good.png", solid((1, 2, 3)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage bytes, not an image")
    source = folder.open_source(data_dir=tmp_path)
    assert source.read(1, 2)[0][0, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DataError, match=r"image .*broken\.png cannot be decoded"):
        source.read(0, 2)


def test_empty_image_file_is_named_when_read(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"image .*zero\.jpg cannot be"):
        folder.open_source(data_dir=tmp_path).read(0, 1)


def test_folder_without_images_says_which_extensions_are_read(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no \.png/\.jpg/\.jpeg images in .*Point --data-dir"):
        folder.open_source(data_dir=tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"image folder .*nowhere does not exist"):
        folder.open_source(data_dir=tmp_path / "nowhere")


def test_path_that_is_a_file(tmp_path):
    path = write_image(tmp_path / "one.png", solid((0, 0, 0)))
    with pytest.raises(DataError, match=r"one\.png is a file, not a folder"):
        folder.open_source(data_dir=path)


def test_loose_images_beside_class_folders_are_refused(labeled_folder):
    write_image(labeled_folder / "stray.png", solid((0, 0, 0)))
    with pytest.raises(DataError, match=r"both loose images and class sub-folders \(elliptical, spiral\)"):
        folder.open_source(data_dir=labeled_folder)
