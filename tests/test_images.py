"""core/images.py: grey levels rounded and clipped to uint8, image grids laid out row by row with padding and fill,
and batches resized by area averaging (shrink), bilinear interpolation (enlarge) or not at all (same size)."""
import numpy as np
import pytest

from core.images import GREY_LEVELS, grey_levels, image_grid, resize_batch


def test_grey_levels_round_to_the_nearest_level_and_clip_outside_0_1():
    values = np.array([0.0, 0.4 / 255, 0.6 / 255, 0.5, 100.4 / 255, 1.0, -0.3, 1.7, np.float32(254.6 / 255)])
    levels = grey_levels(values)
    assert GREY_LEVELS == 256
    assert levels.dtype == np.uint8 and levels.shape == values.shape
    # 0.5 · 255 = 127.5 rounds half to even (np.rint): 128; below 0 and above 1 clip to 0 and 255
    assert levels.tolist() == [0, 0, 1, 128, 100, 255, 0, 255, 255]


def test_grey_levels_keep_the_batch_shape_and_invert_division_by_255():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(grey_levels(pixels.astype(np.float32) / 255), pixels)
    assert grey_levels(np.zeros((2, 3, 4, 3))).shape == (2, 3, 4, 3)


def test_image_grid_lays_images_out_row_by_row_with_padding_and_fill():
    images = np.stack([np.full((4, 3, 2), k / 10, np.float32) for k in range(1, 6)])    # 5 images of 4×3, 2 channels
    grid = image_grid(images, columns=3, padding=1, fill=0.9)
    assert grid.shape == (2 * (4 + 1) + 1, 3 * (3 + 1) + 1, 2) and grid.dtype == np.float32
    for k in range(5):
        top, left = 1 + (k // 3) * 5, 1 + (k % 3) * 4
        np.testing.assert_allclose(grid[top:top + 4, left:left + 3], (k + 1) / 10)
    cells = np.zeros(grid.shape[:2], bool)
    for k in range(5):
        cells[1 + (k // 3) * 5:1 + (k // 3) * 5 + 4, 1 + (k % 3) * 4:1 + (k % 3) * 4 + 3] = True
    np.testing.assert_allclose(grid[~cells], 0.9)           # borders and the empty sixth cell: the fill
    assert grid[6:10, 9:12].tolist() == np.full((4, 3, 2), np.float32(0.9)).tolist()


def test_image_grid_defaults_to_a_square_layout_without_extra_padding_rows():
    grid = image_grid(np.ones((5, 2, 2, 1), np.float32))     # ceil(sqrt(5)) = 3 columns, 2 rows, padding 2
    assert grid.shape == (2 * 4 + 2, 3 * 4 + 2, 1)
    assert grid[0].max() == 0 and grid[:, 0].max() == 0      # fill 0 by default
    assert image_grid(np.ones((4, 2, 2, 3), np.float32), padding=0).tolist() == np.ones((4, 4, 3)).tolist()


def test_resize_batch_averages_areas_when_shrinking():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    batch = np.stack([image, 2 * image])[..., None]           # (2, 4, 4, 1)
    shrunk = resize_batch(batch, 2)
    assert shrunk.shape == (2, 2, 2, 1) and shrunk.dtype == np.float32
    blocks = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))      # the mean of every 2×2 block
    np.testing.assert_allclose(shrunk[0, ..., 0], blocks)
    np.testing.assert_allclose(shrunk[1, ..., 0], 2 * blocks)


def test_resize_batch_interpolates_bilinearly_when_enlarging_and_keeps_three_channels():
    ramp = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    batch = np.stack([ramp, 1 - ramp, np.full((2, 2), 0.5, np.float32)], axis=-1)[None]   # (1, 2, 2, 3)
    enlarged = resize_batch(batch, 4)
    assert enlarged.shape == (1, 4, 4, 3)
    # half-pixel centres: the outer columns repeat the edge, the inner ones lie a quarter of the way in
    np.testing.assert_allclose(enlarged[0, :, :, 0], np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)))
    np.testing.assert_allclose(enlarged[0, :, :, 1], np.tile([1.0, 0.75, 0.25, 0.0], (4, 1)))
    np.testing.assert_allclose(enlarged[0, :, :, 2], 0.5)


def test_resize_batch_returns_a_batch_of_the_right_size_untouched():
    batch = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    assert resize_batch(batch, 8) is batch


@pytest.mark.parametrize("channels", [1, 3])
def test_resize_batch_keeps_the_channel_axis(channels):
    batch = np.ones((2, 10, 10, channels), np.float32)
    assert resize_batch(batch, 5).shape == (2, 5, 5, channels)
    assert resize_batch(batch, 20).shape == (2, 20, 20, channels)
    np.testing.assert_allclose(resize_batch(batch, 20), 1.0)
