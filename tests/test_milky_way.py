"""The Milky Way query observed like its gallery, and photographs that are not square keeping their shape."""
import numpy as np
import pytest

from datasets.pipeline import prepare_image
from datasets.synthetic_galaxies import SyntheticGalaxies, milky_way
from search.embedding import GallerySpec
from search.milky_way import gallery_distance, image_statistics, milky_way_views
from search.queries import search_query


def prepared(images: np.ndarray, size: int = 32) -> np.ndarray:
    return np.concatenate([prepare_image(image, size) for image in images])


def test_image_statistics_measure_sky_noise_contrast_extent_and_colour():
    rng = np.random.default_rng(0)
    flat = np.full((1, 32, 32, 3), 0.2, np.float32)
    noisy = np.clip(flat + rng.normal(0, 0.05, flat.shape), 0, 1).astype(np.float32)
    lit = flat.copy()
    lit[:, 8:24, 8:24] = 0.9
    red = flat.copy()
    red[..., 0] = 0.5
    sky, noise, contrast, extent, core, colour = image_statistics(np.concatenate([flat, noisy, lit, red])).T
    assert sky[0] == np.float32(0.2) and noise[0] == 0 and contrast[0] == 0 and colour[0] == 0
    # intensity noise 0.05 / √3; neighbours' difference √2 times that; its median absolute value 0.6745 σ
    assert noise[1] == pytest.approx(0.05 / np.sqrt(3) * np.sqrt(2) * 0.6745, rel=0.1)
    assert contrast[2] > 0.6 and extent[2] == core[2] == 0.25
    assert colour[3] > 0.1


def test_views_are_chosen_to_look_like_the_gallery():
    grey_noisy = np.clip(0.3 + np.random.default_rng(1).normal(0, 0.08, (40, 32, 32, 3)), 0, 1).astype(np.float32)
    dark_clean = prepared(SyntheticGalaxies(32, n=40, seed=5).read(0, 40)[0])
    for gallery in (grey_noisy, dark_clean):
        views = milky_way_views(gallery, 32, views=4, candidates=24)
        assert views.shape == (4, 32, 32, 3) and views.dtype == np.float32
        every_candidate = milky_way_views(gallery, 32, views=24, candidates=24)
        assert gallery_distance(views, gallery).max() <= np.median(gallery_distance(every_candidate, gallery))
    clean = prepare_image(milky_way(32), 32)
    assert gallery_distance(milky_way_views(grey_noisy, 32, views=4, candidates=24), grey_noisy).mean() < \
        gallery_distance(clean, grey_noisy)[0]
    noise = [image_statistics(milky_way_views(gallery, 32, views=4, candidates=24))[:, 1].mean()
             for gallery in (grey_noisy, dark_clean)]
    assert noise[0] > noise[1]


def test_search_query_is_views_for_the_milky_way_and_one_image_for_a_file(tmp_path):
    import cv2

    spec = GallerySpec(image_size=32, limit=30, seed=2)
    source = spec.open()
    views = search_query("milky-way", spec, source)
    assert views.shape[1:] == (32, 32, 3) and len(views) > 1
    path = tmp_path / "galaxy.png"
    cv2.imwrite(str(path), milky_way(48))
    assert search_query(str(path), spec, source).shape == (1, 32, 32, 3)


def test_a_photograph_that_is_not_square_is_cut_to_its_central_square_not_squashed():
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[10:30, 30:50] = 255                          # a square in the middle of a wide photograph
    square = prepare_image(wide, 20)[0, ..., 0]
    rows, columns = np.nonzero(square > 0.5)
    assert rows.max() - rows.min() == columns.max() - columns.min() == 9
