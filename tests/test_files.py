"""evaluation/files.py: results appear whole with a normal file mode, or not at all."""
import os
import stat

import numpy as np
import pytest

from evaluation.files import image_grid, resize_batch, write_atomic, write_png


def normal_mode(directory: bool) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def test_files_and_folders_are_renamed_into_place_with_a_normal_mode(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 4, 1), np.float32))

    def write_folder(temporary: str) -> None:
        os.mkdir(temporary)
        (tmp_path / temporary / "part.txt").write_text("x")

    write_atomic(tmp_path / "model", write_folder)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == normal_mode(False)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == normal_mode(True)
    assert (tmp_path / "model" / "part.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "model"]


def test_a_failing_writer_leaves_nothing_behind(tmp_path):
    def fail(temporary: str) -> None:
        os.mkdir(temporary)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "model", fail)
    assert list(tmp_path.iterdir()) == []


def test_resize_batch_keeps_the_channel_axis_and_grid_fills_its_border():
    images = np.ones((3, 8, 8, 1), np.float32)
    assert resize_batch(images, 4).shape == (3, 4, 4, 1) and resize_batch(images, 8) is images
    np.testing.assert_allclose(resize_batch(images, 16), 1.0)
    grid = image_grid(np.zeros((2, 4, 4, 1), np.float32), columns=2, padding=1, fill=0.5)
    assert grid.shape == (6, 11, 1) and grid[0, 0, 0] == 0.5 and grid[1, 1, 0] == 0.0
