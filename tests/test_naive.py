"""The naive statistical model: tile probabilities from the stars it finds, white circles on the 10×10 grid,
a folder of parts, and train.py runs on star fields."""
import csv
import json

import numpy as np
import pytest

import train
import zoo
from datasets.star_fields import StarFields, star_density
from zoo.naive import NaiveModel


@pytest.fixture(scope="module")
def fitted():
    source = StarFields(n=30, seed=0)
    model = zoo.create("naive")
    rows = []
    model.fit_source(source, epochs=1, batch_size=8, log=rows.append)
    return model, source, rows


@pytest.mark.slow
def test_tile_probabilities_sum_to_one_and_count_the_stars_found(fitted):
    model, source, rows = fitted
    drawn = [source.field(i)[1] for i in range(len(source))]
    assert model.tile_probabilities.shape == (100, 100)
    assert model.tile_probabilities.sum() == pytest.approx(1.0)
    total = sum(len(stars) for stars in drawn)
    np.testing.assert_allclose(model.tile_probabilities * total, np.round(model.tile_probabilities * total), atol=1e-9)
    first = drawn[0]
    assert (model.tile_probabilities[(first.y // 10).astype(int), (first.x // 10).astype(int)] > 0).all()
    counts = [len(stars) for stars in drawn]
    mean_count = np.sum(np.arange(len(model.count_probabilities)) * model.count_probabilities)
    assert mean_count == pytest.approx(np.mean(counts))
    assert len(model.radii) == total and 3 < np.median(model.radii) < 10
    assert rows == [{"part": "statistics", "epoch": 0, "fields": 30, "stars": total, "seconds": rows[0]["seconds"]}]


@pytest.mark.slow
def test_tile_probabilities_follow_the_band_of_the_renderer(fitted):
    model, _, _ = fitted
    centres = np.arange(5, 1000, 10)
    density = star_density(*np.meshgrid(centres, centres))
    assert (model.tile_probabilities * density).sum() > density.mean() + 0.1


@pytest.mark.slow
def test_samples_respect_the_10px_grid_and_the_statistics(fitted):
    model, _, _ = fitted
    fields = model.sample_stars(50, seed=1)
    counts = np.array([len(radii) for _, radii in fields])
    assert set(counts) <= set(np.flatnonzero(model.count_probabilities))
    centres = np.concatenate([c for c, _ in fields])
    tiles = (centres // 10).astype(int)
    assert (model.tile_probabilities[tiles[:, 1], tiles[:, 0]] > 0).all()
    assert set(np.concatenate([r for _, r in fields])) <= set(model.radii)


@pytest.mark.slow
def test_generated_fields_are_white_circles_on_black(fitted):
    model, _, _ = fitted
    images = model.generate(3, seed=2)
    assert images.shape == (3, 1000, 1000, 1) and images.dtype == np.float32
    assert images.min() == 0 and images.max() == 1
    yy, xx = np.mgrid[:1000, :1000]
    for image, (centres, radii) in zip(images[..., 0], model.sample_stars(3, seed=2)):
        inside = np.zeros((1000, 1000), bool)
        outside = np.ones((1000, 1000), bool)
        for (x, y), radius in zip(centres, radii):
            distance = np.hypot(xx - x, yy - y)
            inside |= distance < radius - 1
            outside &= distance > radius + 2        # anti-aliased edges are about 1.5 px wide
        assert (image[inside] == 1).all() and (image[outside] == 0).all()
    np.testing.assert_array_equal(model.generate(2, seed=5), model.generate(2, seed=5))


@pytest.mark.slow
def test_parts_round_trip(fitted, tmp_path):
    model, _, _ = fitted
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.json", "statistics.npz"]
    loaded = NaiveModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.generate(2, seed=3), model.generate(2, seed=3))
    with pytest.raises(zoo.ModelError, match="is not a complete naive model"):
        NaiveModel.load(tmp_path / "missing")


def test_untrained_model_says_how_to_train():
    expected = "model 'naive' is not trained yet. Train it with 'python train.py --model naive --dataset star-fields'"
    with pytest.raises(zoo.ModelError, match=expected):
        zoo.create("naive").generate(1)


@pytest.mark.slow
def test_train_cli_writes_a_run_folder_of_parts(tmp_path, one_line_error):
    run_dir = tmp_path / "run"
    train.main(["--model", "naive", "--dataset", "star-fields", "--limit", "12", "--out", str(run_dir)])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world"] == "star-fields" and config["image_size"] == 1000 and config["n_images"] == 12
    with open(run_dir / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    assert [row["part"] for row in history] == ["statistics"] and history[0]["fields"] == "11"
    assert float(history[0]["seconds"]) > 0
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["generated.png", "tile_probabilities.png"]
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["parts.json", "statistics.npz"]
    images = zoo.load(run_dir).generate(2, seed=0)
    assert images.shape == (2, 1000, 1000, 1) and images.max() == 1.0

    assert one_line_error(train.main, ["--resume", str(run_dir)]) == (
        "error: model 'naive' trains on whole images in one go, so --resume, --tile, --crop and --distribute do not "
        "apply to it. Train it again without them\n")
