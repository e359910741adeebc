"""evaluation/preview.py and the two commands that reach it, `python -m datasets.synthetic_galaxies --preview` and
`python -m datasets.star_fields --preview`: they write a PNG figure of the right layout (one row per class, one
column per set of fields), trained runs add columns, the close-up finds the brightest star, and a bad flag is one
`error: ` line with exit status 2 that writes nothing."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import cli
from core.runs import TrainConfig
from datasets.star_fields.__main__ import main as star_fields_main
from datasets.synthetic_galaxies.__main__ import main as galaxies_main
from evaluation.preview import brightest_crop, save_galaxy_preview, save_star_field_preview
from training import train

ROOT = Path(__file__).resolve().parents[1]


def run_module(module, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def read_figure(path):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not an image OpenCV can read"
    return image


@pytest.mark.slow
def test_galaxy_preview_command_writes_a_tall_figure_of_one_row_per_class(tmp_path):
    out = tmp_path / "galaxies.png"
    result = run_module("datasets.synthetic_galaxies", "--preview", str(out), "--size", "16", "--per-class", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"wrote {out}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = read_figure(out)
    height, width, channels = figure.shape
    assert channels == 3 and height > 2.5 * width          # 6 rows (5 classes and the Milky Way) of 2 images
    assert figure.std() > 10                               # not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["galaxies.png"]


def test_more_images_per_class_make_the_galaxy_figure_wider(tmp_path):
    save_galaxy_preview(str(tmp_path / "two.png"), size=16, per_class=2)
    save_galaxy_preview(str(tmp_path / "six.png"), size=16, per_class=6)
    two, six = read_figure(tmp_path / "two.png"), read_figure(tmp_path / "six.png")
    assert six.shape[1] > 2 * two.shape[1] and abs(six.shape[0] - two.shape[0]) < 0.1 * two.shape[0]


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "naive"
    train(TrainConfig(model="naive", dataset="star-fields", limit=12), run_dir=run_dir, verbose=0)
    return run_dir


@pytest.mark.slow
def test_star_field_preview_command_writes_a_column_of_real_fields_and_one_per_run(tmp_path, naive_run):
    real_only, with_run = tmp_path / "real.png", tmp_path / "with_run.png"
    result = run_module("datasets.star_fields", "--preview", str(real_only), "--n", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"wrote {real_only}"
    save_star_field_preview(str(with_run), runs=[str(naive_run)], n=2)
    one, two = read_figure(real_only), read_figure(with_run)
    assert one.ndim == 3 and one.shape[0] > 1.8 * one.shape[1]      # whole field, close-up, histogram: one column
    assert two.shape[1] > 1.6 * one.shape[1] and abs(two.shape[0] - one.shape[0]) < 0.1 * one.shape[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.png", "with_run.png"]


def test_brightest_crop_is_the_window_around_the_brightest_star_kept_inside_the_field():
    field = np.full((300, 400), 5, np.uint8)
    cv2.circle(field, (390, 150), 4, 255, -1)                        # near the right edge
    cv2.circle(field, (100, 100), 4, 120, -1)                        # fainter
    crop = brightest_crop(field, side=120)
    assert crop.shape == (120, 120)
    np.testing.assert_array_equal(crop, field[90:210, 280:400])      # centred on row 150, shifted in from the edge
    assert brightest_crop(field, side=300).shape == (300, 300)


BAD_FLAGS = [
    (galaxies_main, ["--preview", "out.png", "--size", "0"],
     "error: argument --size: expected a positive whole number, got '0'. "
     "Run 'python -m datasets.synthetic_galaxies --help' for the flags"),
    (galaxies_main, ["--size", "16"],
     "error: the following arguments are required: --preview. "
     "Run 'python -m datasets.synthetic_galaxies --help' for the flags"),
    (star_fields_main, ["--preview", "out.png", "--n", "-2"],
     "error: argument --n: expected a positive whole number, got '-2'. "
     "Run 'python -m datasets.star_fields --help' for the flags"),
    (star_fields_main, ["--preview", "out.png", "--write", "cil"],
     "error: argument --write: not allowed with argument --preview. "
     "Run 'python -m datasets.star_fields --help' for the flags"),
]


@pytest.mark.parametrize("main, argv, message", BAD_FLAGS)
def test_a_bad_flag_is_one_error_line_with_exit_2(main, argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: main(argv))
    captured = capsys.readouterr()
    assert stopped.value.code == 2
    assert captured.err == message + "\n" and captured.out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_bad_flag_from_the_shell_is_exactly_one_stderr_line(tmp_path):
    result = run_module("datasets.star_fields", "--preview", str(tmp_path / "out.png"), "--seed", "many", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: argument --seed: invalid int value: 'many'. "
                                          "Run 'python -m datasets.star_fields --help' for the flags"]
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
