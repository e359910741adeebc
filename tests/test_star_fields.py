"""The built-in star fields: what the seed describes (dark textured sky, 5-25 round or diamond stars of 10-20 px,
a non-uniform position density), deterministic per seed, and the CIL layout writer with its similarity score."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import cli
import datasets
import zoo
from core.errors import DataError
from core.stars import PROFILE_RADII, find_stars, star_shapes
from datasets.star_fields import (
    Distortion,
    ScoredStarFields,
    StarFields,
    Stars,
    draw_stars,
    render_field,
    star_density,
    write_cil,
)
from datasets.star_fields.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def star_mask(stars, size=1000, radius=16):
    mask = np.zeros((size, size), bool)
    for x, y in zip(stars.x, stars.y):
        mask[max(0, int(y) - radius):int(y) + radius + 1, max(0, int(x) - radius):int(x) + radius + 1] = True
    return mask


def test_fields_are_dark_1000px_with_5_to_25_stars_of_10_to_20_px():
    source = StarFields(n=6, seed=0)
    images, labels = source.read(0, 6)
    assert images.shape == (6, 1000, 1000, 1) and images.dtype == np.uint8 and (labels == -1).all()
    for index in range(6):
        field, stars = source.field(index)
        np.testing.assert_array_equal(field, images[index, ..., 0])
        assert 5 <= len(stars) <= 25
        assert (stars.diameter >= 10).all() and (stars.diameter <= 20).all()
        background = field[~star_mask(stars)]
        assert np.mean(background < 30) > 0.99 and np.median(background) < 10
        assert field.max() == 255      # the brightest stars saturate
        separations = np.hypot(stars.x[:, None] - stars.x, stars.y[:, None] - stars.y) + 1e3 * np.eye(len(stars))
        assert separations.min() >= 32


def test_the_background_has_texture_not_iid_noise():
    field, stars = StarFields(1, seed=2).field(0)
    sky = np.where(star_mask(stars), np.nan, field.astype(float))
    block_means = np.nanmean(sky.reshape(20, 50, 20, 50), axis=(1, 3))
    iid_spread = np.nanstd(sky) / 50            # the spread of 50×50 block means if pixels were independent
    assert np.nanstd(block_means) > 3 * iid_spread


def test_field_i_depends_only_on_seed_and_index():
    whole, _ = StarFields(n=5, seed=3).read(0, 5)
    part, _ = StarFields(n=5, seed=3).read(2, 4)
    np.testing.assert_array_equal(part, whole[2:4])
    other, _ = StarFields(n=5, seed=4).read(0, 5)
    assert not np.array_equal(other, whole)


def test_star_positions_follow_the_band_density():
    source = StarFields(n=40, seed=0)
    stars = [source.field(i)[1] for i in range(40)]
    x, y = np.concatenate([s.x for s in stars]), np.concatenate([s.y for s in stars])
    uniform = np.random.default_rng(0).uniform(16, 984, (2, 20000))
    assert star_density(x, y).mean() > star_density(*uniform).mean() + 0.1
    shapes = np.concatenate([s.shape for s in stars])
    assert 0.2 < np.mean(shapes == 1) < 0.5 and set(shapes) == {0, 1}    # round and diamond, no square


def test_round_diamond_and_square_stars_have_their_shapes_and_a_halo():
    canvas = np.zeros((3, 61, 61), np.float32)
    for shape in range(3):
        draw_stars(canvas[shape], Stars(x=np.array([30.0]), y=np.array([30.0]), diameter=np.array([16.0]),
                                        peak=np.array([200.0]), halo=np.array([0.2]), shape=np.array([shape])))
    on_axis, diagonal = canvas[:, 30, 36], canvas[:, 34, 34]        # 6 px right; 4 px right and 4 down
    np.testing.assert_allclose(on_axis, on_axis[0])                  # the same profile along the axes
    assert diagonal[0] > 3 * diagonal[1] and diagonal[2] > diagonal[0]   # diamond: no corners; square: corners
    assert canvas[0, 30, 30] == pytest.approx(240, abs=1)            # core 200 + halo 0.2 × 200
    assert 1 < canvas[0, 30, 42] < 5 and canvas[0, 30, 46] == 0      # a halo beyond the 8 px core, inside the stamp


def test_similarity_score_is_8_for_real_fields_and_falls_with_distortion():
    assert Distortion().score == 8.0
    assert Distortion(background=1.0).score == pytest.approx(8 / math.e)
    assert Distortion(blur=1.0, noise=1.0).score == pytest.approx(8 * math.exp(-math.sqrt(2)))
    clean, _ = render_field(np.random.default_rng(0))
    noisy, _ = render_field(np.random.default_rng(0), Distortion(noise=2.0))
    bright, _ = render_field(np.random.default_rng(0), Distortion(background=2.0))
    assert noisy.std() > clean.std() and np.median(bright) > 2 * np.median(clean)
    crowded, stars = render_field(np.random.default_rng(0), Distortion(count=2.0))
    assert len(stars) == 33


def test_write_cil_writes_the_whole_layout_deterministically(tmp_path):
    folder = write_cil(tmp_path / "cil", n=4, n_scored=3, n_query=2, seed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["labeled", "labeled.csv", "query", "rendering.json",
                                                      "scored", "scored.csv"]
    with open(folder / "labeled.csv") as handle:
        labeled = list(csv.DictReader(handle))
    with open(folder / "scored.csv") as handle:
        scored = list(csv.DictReader(handle))
    assert [float(row["Actual"]) for row in labeled].count(1.0) == 2 and len(labeled) == 4
    assert [float(row["Actual"]) for row in scored] == pytest.approx(ScoredStarFields(3, seed=1).scores, rel=1e-5)
    assert len(list((folder / "query").glob("*.png"))) == 2
    for row in labeled:
        image = cv2.imread(str(folder / "labeled" / f"{row['Id']}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (1000, 1000) and image.dtype == np.uint8
    again = write_cil(tmp_path / "again", n=4, n_scored=3, n_query=2, seed=1)
    assert (again / "scored.csv").read_text() == (folder / "scored.csv").read_text()
    first = labeled[0]["Id"]
    assert (again / "labeled" / f"{first}.png").read_bytes() == (folder / "labeled" / f"{first}.png").read_bytes()
    with pytest.raises(DataError, match="already exists and is not an empty folder"):
        write_cil(folder, n=2)


@pytest.mark.slow
def test_write_command_line_and_refusal(tmp_path, capsys):
    argv = ["--write", str(tmp_path / "cil"), "--n", "2", "--n-scored", "1", "--n-query", "1"]
    result = subprocess.run([sys.executable, "-m", "datasets.star_fields", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "cil" / "labeled").glob("*.png"))) == 2
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: main(argv))
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1
    assert err == (f"error: {tmp_path / 'cil'} already exists and is not an empty folder. "
                   "Choose a new folder for --write\n")


def test_registered_as_the_star_fields_dataset():
    source = datasets.load("star-fields", limit=3)
    assert len(source) == 3 and source.channels == 1 and not source.labeled
    assert "star-fields" in datasets.list_datasets() and "cil" in datasets.list_datasets()


@pytest.mark.slow
def test_tiled_training_cuts_fields_into_tiles_and_stitches_generated_ones(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "train.py", "--model", "vae", "--dataset", "star-fields", "--tile", "256",
                             "--image-size", "16", "--limit", "2", "--epochs", "1", "--batch-size", "8", "--out",
                             str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reconstructions = cv2.imread(str(run_dir / "samples" / "reconstructions_epoch_001.png"), cv2.IMREAD_UNCHANGED)
    assert reconstructions.shape == (2 + 2 * 18, 2 + 8 * 18)   # 8 of the validation field's 16 tiles, 16 px each
    stitched = cv2.imread(str(run_dir / "samples" / "stitched.png"), cv2.IMREAD_UNCHANGED)
    assert stitched.shape == (62, 62)                           # 16 generated tiles: 1000 px at the scale 16/256
    assert zoo.load(run_dir).generate(1).shape == (1, 16, 16, 1)


def test_scored_set_versions_version_1_is_the_old_mix_and_version_2_adds_what_fakes_get_wrong(tmp_path):
    from datasets.cil import CILSource
    from datasets.star_fields import DISTORTIONS, FAKE_LOOKS, SCORED_VERSION, _rng, random_distortion

    drawn = {version: [random_distortion(_rng(0, "scored", i), False, version) for i in range(200)]
             for version in (1, 2)}
    assert not any(getattr(d, name) for d in drawn[1] for name in FAKE_LOOKS)
    assert all(any(getattr(d, name) for d in drawn[2]) for name in DISTORTIONS + FAKE_LOOKS)
    old = ScoredStarFields(3, seed=0, version=1)
    np.testing.assert_array_equal(old.scores, [d.score for d in drawn[1][:3]])
    assert ScoredStarFields(3).version == SCORED_VERSION == 2
    layout = write_cil(tmp_path / "v1", n=2, n_scored=3, n_query=0, scored_version=1)
    assert json.loads((layout / "rendering.json").read_text()) == {"seed": 0, "scored_version": 1}
    np.testing.assert_array_equal(CILSource(layout, "scored").read(0, 3)[0], old.read(0, 3)[0])
    with pytest.raises(DataError, match="there is no scored-set version 3. Use one of \\[1, 2\\]"):
        ScoredStarFields(2, version=3)


def test_fake_looks_change_what_they_name():
    rng = lambda: np.random.default_rng(4)      # noqa: E731 - the same stars and sky for every look
    real, _ = render_field(rng())
    flat, _ = render_field(rng(), Distortion(flat=2.0))
    fog, _ = render_field(rng(), Distortion(fog=2.0))
    blocky, _ = render_field(rng(), Distortion(blocky=1.0))
    big, stars = render_field(rng(), Distortion(size=2.0))
    sky = real < 30
    assert flat[sky].std() < 0.3 * real[sky].std()                      # no grain left
    assert np.median(fog) - np.median(real) == pytest.approx(24, abs=1)  # a pedestal of 12·s grey levels
    assert np.array_equal(blocky[::4, ::4].repeat(4, 0).repeat(4, 1), blocky)     # 4×4 blocks of one value
    assert stars.diameter.min() >= 10 * 2 ** 1.5 - 1e-9
    attacked, _ = render_field(rng(), Distortion(attack=2.0))        # every star a flat disc or square
    assert np.array_equal(np.sort(attacked, axis=None), np.sort(real, axis=None)) and not np.array_equal(attacked, real)
    beyond = PROFILE_RADII.index(1.5)
    halos = [np.median(star_shapes(field, find_stars(field))[:, beyond]) for field in (real, attacked)]
    assert halos[1] < 0.5 * halos[0]                                 # the real grey levels, but no halo past the rim


def test_attack_paints_stars_cut_by_the_field_edge():
    from datasets.star_fields.adversarial import adversarial_field

    field = np.full((120, 120), 3, np.uint8)
    cv2.circle(field, (117, 60), 7, 200, -1)                         # a large star whose square reaches past the edge
    field = cv2.GaussianBlur(field, (0, 0), 2)
    attacked = adversarial_field(field, np.random.default_rng(0))
    assert np.array_equal(np.sort(attacked, axis=None), np.sort(field, axis=None))
    assert not np.array_equal(attacked, field)
