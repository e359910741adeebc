"""core/stars.py, the star extraction the naive and layered models learn from and the star-count metric counts:
it finds exactly the rendered stars, measures centres, peaks and radii of stars the test draws, keeps the
strongest of stars closer than min_distance, cuts patches (padded with the sky at the edge), keeps the
background outside them, and reads fields from sources with a DataError for images that are no fields."""
import numpy as np
import pytest

from core.errors import DataError
from core.stars import (
    FIELDS_PER_READ,
    FoundStars,
    StarTable,
    as_field,
    background_level,
    background_pixels,
    extract_patches,
    find_stars,
    no_stars_error,
    stars_of_fields,
)
from datasets.source import ArraySource
from datasets.star_fields import StarFields


def disc_field(size=64, sky=10, stars=((32.0, 32.0, 5.0, 200),)):
    """A uint8 field of flat sky with flat discs (x, y, radius, value): the half-maximum area is the disc's."""
    yy, xx = np.mgrid[:size, :size]
    field = np.full((size, size), sky, np.uint8)
    for x, y, radius, value in stars:
        field[np.hypot(xx - x, yy - y) <= radius] = value
    return field


def test_extraction_finds_exactly_the_rendered_stars():
    source = StarFields(n=8, seed=5)
    for index in range(8):
        field, drawn = source.field(index)
        found = find_stars(field)
        assert len(found) == len(drawn)
        distances = np.hypot(found.x[:, None] - drawn.x, found.y[:, None] - drawn.y)
        assert distances.min(axis=0).max() < 1.0                    # every drawn star found within a pixel


def test_a_disc_gives_its_centre_its_height_above_the_sky_and_its_radius():
    found = find_stars(disc_field(stars=((30.0, 21.0, 5.0, 200),)))
    assert isinstance(found, FoundStars) and isinstance(found, StarTable) and len(found) == 1
    assert (found.x[0], found.y[0]) == pytest.approx((30.0, 21.0), abs=1e-9)   # a symmetric disc: the exact centre
    assert found.peak[0] == 190                                                 # above the median sky of 10
    area = np.count_nonzero(disc_field(stars=((30.0, 21.0, 5.0, 200),)) == 200)
    assert found.radius[0] == pytest.approx(np.sqrt(area / np.pi))              # the disc of the same area
    assert 4.8 < found.radius[0] < 5.2


def test_stars_fainter_than_the_threshold_are_not_stars_and_the_strongest_comes_first():
    field = disc_field(size=96, stars=((20.0, 20.0, 4.0, 60), (70.0, 30.0, 4.0, 250), (40.0, 75.0, 4.0, 20)))
    found = find_stars(field, threshold=32.0)
    assert len(found) == 2                                   # the 10-level disc smooths to less than 32
    assert (found.x.round().tolist(), found.y.round().tolist()) == ([70.0, 20.0], [30.0, 20.0])
    assert found.peak.tolist() == [240.0, 50.0]
    assert len(find_stars(field, threshold=5.0)) == 3
    assert len(find_stars(field, threshold=500.0)) == 0


def test_stars_closer_than_min_distance_keep_the_strongest():
    field = disc_field(stars=((25.0, 32.0, 3.0, 150), (37.0, 32.0, 3.0, 250)))    # 12 px apart
    (x,) = find_stars(field, min_distance=15).x
    assert x == pytest.approx(37.0)
    assert sorted(find_stars(field, min_distance=8).x.round().tolist()) == [25.0, 37.0]


def test_an_empty_sky_has_no_stars():
    found = find_stars(np.full((40, 40), 7, np.uint8))
    assert len(found) == 0 and found.x.shape == found.radius.shape == (0,)


def test_background_level_is_the_median_grey_level():
    assert background_level(np.arange(9, dtype=np.uint8).reshape(3, 3)) == 4.0
    assert background_level(disc_field()) == 10.0                 # the discs cover less than half the field
    assert isinstance(background_level(disc_field()), float)


def test_patches_are_centred_on_the_stars_and_the_background_excludes_them():
    field, drawn = StarFields(n=1, seed=1).field(0)
    found = find_stars(field)
    patches = extract_patches(field, found)
    assert patches.shape == (len(drawn), 30, 30) and patches.dtype == np.uint8
    rows, columns = np.mgrid[:30, :30]
    for patch in patches.astype(float):
        weight = np.clip(patch - np.median(patch), 0, None)
        weight[weight < weight.max() / 2] = 0
        centre = np.array([(rows * weight).sum(), (columns * weight).sum()]) / weight.sum()
        assert np.abs(centre - 15).max() < 1
    sky = background_pixels(field, found)
    assert len(sky) == field.size - len(drawn) * 30 * 30              # stars are 32 px apart: patches do not overlap
    assert np.percentile(sky, 99.9) < 40 and field.max() == 255


def test_patches_at_the_edge_are_padded_with_the_median_sky():
    field = disc_field(size=40, sky=9, stars=((2.0, 3.0, 2.0, 240),))
    stars = FoundStars(x=np.array([2.0]), y=np.array([3.0]), peak=np.array([231.0]), radius=np.array([2.0]))
    (patch,) = extract_patches(field, stars, patch_size=10)
    assert patch.shape == (10, 10) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch[2:, 3:], field[:8, :7])        # the field from its corner on
    assert (patch[:2] == 9).all() and (patch[:, :3] == 9).all()        # beyond the edge: the median sky
    assert patch[5, 5] == 240                                           # the star's centre in the middle


def test_no_stars_give_no_patches_and_the_whole_field_as_background():
    field = disc_field(size=20, stars=())
    none = FoundStars(*(np.zeros(0) for _ in range(4)))
    patches = extract_patches(field, none, patch_size=8)
    assert patches.shape == (0, 8, 8) and patches.dtype == np.uint8
    np.testing.assert_array_equal(background_pixels(field, none, patch_size=8), field.ravel())


def test_background_pixels_leave_out_every_patch_also_at_the_edge():
    field = disc_field(size=40, stars=((20.0, 20.0, 2.0, 200), (1.0, 38.0, 1.0, 200)))
    stars = FoundStars(x=np.array([20.0, 1.0]), y=np.array([20.0, 38.0]), peak=np.full(2, 190.0),
                       radius=np.ones(2))
    sky = background_pixels(field, stars, patch_size=10)
    # rows/columns 15..24 around the first; rows 33..39 by columns 0..5 around the second, cut by the edge
    assert len(sky) == 40 * 40 - 10 * 10 - 7 * 6
    assert sky.dtype == np.uint8 and (sky == 10).all()


def test_stars_of_fields_reads_every_field_in_order_across_reads():
    n = FIELDS_PER_READ + 3
    fields = np.stack([disc_field(size=32, stars=((8.0 + k % 16, 16.0, 3.0, 200),)) for k in range(n)])[..., None]
    found = list(stars_of_fields(ArraySource(fields), 32, threshold=32.0, min_distance=15, description="test",
                                 verbose=0))
    assert len(found) == n
    for k, (field, stars) in enumerate(found):
        assert field.shape == (32, 32) and field.dtype == np.uint8
        np.testing.assert_array_equal(field, fields[k, ..., 0])
        assert len(stars) == 1 and stars.x[0] == pytest.approx(8.0 + k % 16)


@pytest.mark.parametrize("shape, shown", [((16, 16, 1), "16×16×1"), ((32, 32, 3), "32×32×3"), ((32, 16), "32×16")])
def test_images_that_are_no_fields_of_the_size_are_a_data_error(shape, shown):
    source = ArraySource(np.zeros((2, *shape), np.uint8), name="galaxies")
    with pytest.raises(DataError) as refused:
        list(stars_of_fields(source, 32, 32.0, 15, "test", verbose=0))
    assert str(refused.value) == (f"dataset 'galaxies' gives {shown} images but star-field models need 32×32×1 "
                                  f"fields. Use --dataset star-fields or cil, or --image-size {shape[0]}")


def test_as_field_accepts_one_channel_or_none():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    np.testing.assert_array_equal(as_field(image, 4, "x"), image)
    np.testing.assert_array_equal(as_field(image[..., None], 4, "x"), image)
    assert as_field(image[..., None], 4, "x").shape == (4, 4)


def test_no_stars_error_says_what_was_searched_and_what_to_do():
    error = no_stars_error(12, "cil", 32.0)
    assert isinstance(error, DataError)
    assert str(error) == ("no stars found in the 12 fields of 'cil' (threshold 32.0 grey levels). "
                          "Check the data or lower --option threshold=...")


def test_star_shapes_tell_hard_edged_and_square_stars_from_soft_round_ones():
    from core.stars import PROFILE_RADII, star_shapes
    from datasets.star_fields import Distortion, render_field

    shapes = {}
    for name, distortion in (("real", Distortion()), ("hard", Distortion(hard=2.0)), ("boxy", Distortion(boxy=2.0))):
        field, _ = render_field(np.random.default_rng(1), distortion)
        shapes[name] = np.median(star_shapes(field, find_stars(field)), axis=0)
    beyond = PROFILE_RADII.index(1.25)
    assert shapes["hard"][beyond] < 0.5 * shapes["real"][beyond]         # nothing left past the rim of a hard disc
    assert shapes["hard"][-2] > 1.5 * shapes["real"][-2]                 # a steeper edge
    assert shapes["boxy"][-1] > 0.9 > shapes["real"][-1]                 # squares fill their box
