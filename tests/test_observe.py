"""The observing conditions of the built-in galaxies: drawn over wide ranges, held-out ones outside them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datasets.synthetic_galaxies import milky_way, render
from datasets.synthetic_galaxies.observe import (
    HELD_OUT_CONDITIONS,
    HELD_OUT_STRETCHES,
    STRETCHES,
    Conditions,
    display_curve,
    draw_conditions,
    held_out,
    jpeg,
)

DRAWN = [draw_conditions(np.random.default_rng(i)) for i in range(2000)]


def drawn(name: str) -> np.ndarray:
    return np.array([getattr(c, name) for c in DRAWN])


def test_conditions_span_survey_cut_outs_and_astrophotographs():
    assert {c.stretch for c in DRAWN} == set(STRETCHES)
    assert drawn("half_light").min() < 5 and drawn("half_light").max() > 18       # a small blob to a full frame
    assert drawn("psf_sigma").min() < 0.45 and drawn("psf_sigma").max() > 1.8
    assert drawn("depth").max() / drawn("depth").min() > 30
    assert 0.05 < np.mean(drawn("saturation") == 0) < 0.12                          # some photographs are grey
    saved_as_jpeg = drawn("jpeg_quality")[drawn("jpeg_quality") > 0]
    assert 0.3 < len(saved_as_jpeg) / len(DRAWN) < 0.5 and saved_as_jpeg.min() >= 45
    assert 0.2 < np.mean(drawn("spikes") > 0) < 0.4 and 0.2 < np.mean(drawn("per_channel")) < 0.3


def test_every_held_out_condition_lies_outside_what_training_draws():
    gains = np.array([c.colour_gains for c in DRAWN])
    outside = {
        "stretch": held_out(DRAWN[0], "stretch").stretch not in {c.stretch for c in DRAWN},
        "equalise": held_out(DRAWN[0], "equalise").stretch not in {c.stretch for c in DRAWN},
        "seeing": held_out(DRAWN[0], "seeing").psf_sigma > drawn("psf_sigma").max(),
        "noise": held_out(DRAWN[0], "noise").depth < drawn("depth").min(),
        "stars": held_out(DRAWN[0], "stars").star_density > drawn("star_density").max(),
        "zoom": held_out(DRAWN[0], "zoom").half_light > drawn("half_light").max(),
        "colour": (held_out(DRAWN[0], "colour").colour_gains[0] / held_out(DRAWN[0], "colour").colour_gains[2]
                   > (gains[:, 0] / gains[:, 2]).max()),
        "jpeg": 0 < held_out(DRAWN[0], "jpeg").jpeg_quality < drawn("jpeg_quality")[drawn("jpeg_quality") > 0].min(),
    }
    assert set(outside) == set(HELD_OUT_CONDITIONS) and all(outside.values()), outside


def test_a_held_out_condition_shows_the_same_galaxy_under_another_sky():
    rng = lambda: np.random.default_rng([0, 7])  # noqa: E731
    usual, again, blocky = render(2, 64, rng()), render(2, 64, rng()), render(2, 64, rng(), "jpeg")
    np.testing.assert_array_equal(usual, again)
    assert not np.array_equal(usual, blocky)
    assert np.corrcoef(usual.ravel(), blocky.ravel())[0, 1] > 0.8                    # same galaxy, worse JPEG
    other = render(2, 64, np.random.default_rng([0, 8]))
    assert np.corrcoef(usual.ravel(), other.ravel())[0, 1] < 0.8


@pytest.mark.parametrize("stretch", [*STRETCHES, *HELD_OUT_STRETCHES])
def test_display_curves_rise_from_black_to_white(stretch):
    conditions = Conditions(stretch=stretch, softening=0.05)
    levels = np.linspace(-0.5, 1.5, 201, dtype=np.float32)
    curve = display_curve(levels, conditions)
    assert curve[0] == 0 and curve[-1] == 1 and np.all(np.diff(curve) >= 0)
    if stretch in ("asinh", "log", "sqrt", "mtf"):
        assert display_curve(np.float32([0.1]), conditions)[0] > 0.25                 # faint light lifted


def test_jpeg_leaves_blocks_and_keeps_the_picture():
    image = render(0, 64, np.random.default_rng([1, 1]))
    saved = jpeg(image, 20)
    assert saved.shape == image.shape and saved.dtype == np.uint8
    assert 0 < np.abs(saved.astype(int) - image).mean() < 20


def test_the_milky_way_is_fixed_by_default_and_follows_the_conditions_it_is_given():
    np.testing.assert_array_equal(milky_way(64), milky_way(64))
    small = Conditions(half_light=6.0, depth=5.0, black=2.0, star_density=0.0, neighbours=0.0)
    large = dataclasses.replace(small, half_light=18.0)
    lit = [np.mean(milky_way(64, c, seed=1).mean(axis=-1) > 60) for c in (small, large)]
    assert lit[1] > 2 * lit[0]
