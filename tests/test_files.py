"""core/files.py: results appear whole with a normal file mode, or not at all; JSON and PNG files hold what was
written (RGB in the right channel order, floats rounded to grey levels); figures are saved and closed."""
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.files import save_figure, write_atomic, write_json, write_png


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


def test_write_json_writes_indented_json_and_paths_as_text(tmp_path):
    written = write_json(tmp_path / "sub" / "result.json", {"n": 3, "run": Path("runs/a"), "values": [0.5, None]})
    assert written == tmp_path / "sub" / "result.json"
    assert json.loads(written.read_text()) == {"n": 3, "run": "runs/a", "values": [0.5, None]}
    assert written.read_text().startswith('{\n  "n": 3,') and written.read_text().endswith("}\n")


def test_write_png_keeps_rgb_order_and_rounds_floats_to_grey_levels(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255                                           # pure red
    write_png(tmp_path / "red.png", rgb)
    assert cv2.imread(str(tmp_path / "red.png"))[0, 0].tolist() == [0, 0, 255]    # OpenCV reads BGR
    grey = np.array([[0.0, 0.5 / 255, 0.7 / 255, 0.5], [1.0, 1.5, -1.0, 200.2 / 255]], np.float32)
    write_png(tmp_path / "grey.png", grey)
    read = cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint8 and read.tolist() == [[0, 0, 1, 128], [255, 255, 0, 200]]


def test_save_figure_writes_a_png_of_the_figure_and_closes_it(tmp_path):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(2, 1))
    axis.plot([0, 1], [0, 1])
    save_figure(tmp_path / "figure.png", figure)
    assert not plt.fignum_exists(figure.number)
    image = cv2.imread(str(tmp_path / "figure.png"))
    assert image.ndim == 3 and image.shape[1] > image.shape[0]      # a wide figure stays wide
