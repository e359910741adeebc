"""The scorers: the built-in scored set is the CIL writer's, the random forest beats predicting the mean and
ranks real fields above distorted ones, the CNN trains, scores and encodes, and both save and load."""
import csv

import numpy as np
import pytest

import datasets
import zoo
from core.errors import DataError, ModelError
from core.runs import TrainConfig
from core.worlds import SCORE_RANGE
from datasets.cil import CILSource
from datasets.source import ArraySource
from datasets.star_fields import Distortion, ScoredStarFields, StarFields, render_field, write_cil
from training import train
from zoo.scorers import image_features


@pytest.fixture(scope="module")
def cil_folder(tmp_path_factory):
    return write_cil(tmp_path_factory.mktemp("cil") / "cosmology", n=2, n_scored=24, n_query=0, seed=0)


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory):
    """rf-scorer trained by train.py's path on 96 built-in scored fields, 24 held out."""
    run_dir = tmp_path_factory.mktemp("runs") / "rf"
    _, final = train(TrainConfig(model="rf-scorer", dataset="star-fields", limit=96, validation_fraction=0.25,
                                 options={"trees": 100}), run_dir=run_dir, verbose=0)
    return run_dir, final


@pytest.mark.slow
def test_built_in_scored_fields_are_the_cil_writers_scored_set(cil_folder):
    written, built_in = CILSource(cil_folder, "scored"), ScoredStarFields(24, seed=0)
    np.testing.assert_allclose(written.scores, built_in.scores, rtol=1e-5)     # scored.csv, in writing order
    np.testing.assert_array_equal(written.read(0, 3)[0], built_in.read(0, 3)[0])
    assert 0 < built_in.scores.min() and built_in.scores.max() == 8.0 and len(set(built_in.scores)) > 15


@pytest.mark.slow
def test_datasets_load_scored_opens_the_scored_images_and_refuses_datasets_without_them(cil_folder):
    star_fields = datasets.load("star-fields", scored=True, limit=10)
    assert len(star_fields) == 10 and star_fields.metadata(np.arange(3))["score"].shape == (3,)
    cil = datasets.load("cil", data_dir=str(cil_folder), scored=True)
    assert len(cil) == 24 and set(cil.metadata(np.arange(24))["score"]) == set(CILSource(cil_folder, "scored").scores)
    with pytest.raises(DataError, match="dataset 'synthetic-galaxies' has no scored images to learn scores from. "
                                        "Use --dataset star-fields"):
        datasets.load("synthetic-galaxies", scored=True)


@pytest.mark.slow
def test_random_forest_beats_predicting_the_mean_on_the_built_in_scored_set(forest_run):
    run_dir, final = forest_run
    assert final["val_mae"] < 0.75 * final["val_mae_of_mean"]
    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["part"] == "forest" and rows[0]["images"] == "72"
    assert float(rows[0]["val_mae"]) == pytest.approx(final["val_mae"])
    assert (run_dir / "samples" / "validation.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["forest.skops", "parts.json"]


@pytest.mark.slow
def test_random_forest_scores_real_fields_above_distorted_ones_and_loads_to_the_same_scores(forest_run):
    run_dir, _ = forest_run
    scorer = zoo.load(run_dir)
    assert scorer.zoo_name == "rf-scorer"
    real = StarFields(6, seed=5).read(0, 6)[0].astype(np.float32) / 255
    rng = np.random.default_rng(0)
    distorted = np.stack([render_field(rng, Distortion(background=2.0, noise=1.5))[0] for _ in range(6)])
    distorted = distorted[..., None].astype(np.float32) / 255
    real_scores, distorted_scores = scorer.score(real), scorer.score(distorted)
    assert real_scores.shape == (6,) and real_scores.dtype == np.float32
    assert real_scores.mean() > distorted_scores.mean() + 2
    assert real_scores.min() > distorted_scores.max()            # every real field above every distorted one
    np.testing.assert_array_equal(zoo.load(run_dir).score(real), real_scores)


def test_forest_features_are_histogram_shares_then_the_spectrum():
    images = np.zeros((2, 64, 64, 1), np.float32)
    images[1, :32] = 1.0
    features = image_features(images, bins=8, bands=4)
    assert features.shape == (2, 12)
    np.testing.assert_allclose(features[:, :8].sum(axis=1), 1.0)
    assert features[0, 0] == 1.0 and features[1, 0] == 0.5 and features[1, 7] == 0.5


def test_scorers_refuse_unscored_data_and_scoring_before_training():
    unscored = ArraySource(np.zeros((4, 64, 64, 1), np.uint8))
    with pytest.raises(DataError, match="dataset 'array' has no scores to learn from"):
        zoo.create("rf-scorer").fit_source(unscored)
    with pytest.raises(ModelError, match="model 'rf-scorer' is not trained yet"):
        zoo.create("rf-scorer").score(np.zeros((1, 64, 64, 1), np.float32))
    with pytest.raises(ModelError, match="model 'cnn-scorer' is not trained yet"):
        zoo.create("cnn-scorer", input_size=32).score(np.zeros((1, 64, 64, 1), np.float32))
    with pytest.raises(ModelError, match="rf-scorer needs 2-256 histogram bins"):
        zoo.create("rf-scorer", bins=1)


@pytest.mark.slow
def test_cnn_scorer_trains_scores_encodes_and_saves(tmp_path):
    model = zoo.create("cnn-scorer", input_size=32, widths=(4, 8), feature_dim=8)
    source = ScoredStarFields(12, seed=0)
    rows = []
    model.fit_source(datasets.source.Subset(source, np.arange(8)), validation=datasets.source.Subset(
        source, np.arange(8, 12)), epochs=2, batch_size=4, log=rows.append, verbose=0)
    assert [row["part"] for row in rows] == ["cnn", "cnn", "validation"]
    assert all(np.isfinite(row["loss"]) for row in rows[:2]) and "val_mae" in rows[0]
    assert rows[-1]["val_mae_of_mean"] == pytest.approx(np.mean(np.abs(source.scores[:8].mean() - source.scores[8:])))
    fields = source.read(8, 12)[0].astype(np.float32) / 255
    scores, vectors = model.score(fields), model.encode(fields)
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert rows[-1]["val_mae"] == pytest.approx(np.mean(np.abs(scores - source.scores[8:])), rel=1e-5)
    assert vectors.shape == (4, 8) and np.isfinite(vectors).all()
    assert set(model.sample_grids()) == {"validation"}
    model.save(tmp_path)
    loaded = zoo.get_entry("cnn-scorer").loader(tmp_path)
    np.testing.assert_allclose(loaded.score(fields), scores, rtol=1e-6)
    np.testing.assert_allclose(loaded.encode(fields), vectors, rtol=1e-6)

    bias = loaded.network.get_layer("score").bias          # the network's output, before the scale's clamp
    trained_bias = bias.numpy()
    for shift, clamped in ((100.0, SCORE_RANGE[1]), (-100.0, SCORE_RANGE[0])):
        bias.assign(trained_bias + shift)
        assert loaded.score(fields).tolist() == [clamped] * 4


def test_runs_saved_before_feature_sets_keep_their_features_and_new_ones_see_shapes():
    from zoo.scorers import SHAPE_FEATURES, CNNScorer, ForestScorer

    fields = StarFields(2, seed=3).read(0, 2)[0].astype(np.float32) / 255
    old = ForestScorer(bins=8, bands=4, trees=3, min_samples_leaf=1, max_features=0.5, seed=0)   # an old parts.json
    assert old.options["features"] == "histogram-spectrum" and old.inputs(fields).shape == (2, 12)
    assert zoo.create("rf-scorer", bins=8, bands=4).inputs(fields).shape == (2, 12 + SHAPE_FEATURES)
    assert CNNScorer(input_size=32, channels=1, widths=(4, 8), feature_dim=8, learning_rate=1e-3
                     ).options["features"] == "image"
    with pytest.raises(ModelError, match="rf-scorer has no feature set 'colour'"):
        zoo.create("rf-scorer", features="colour")


@pytest.mark.slow
def test_forest_scores_hard_discs_on_a_flat_sky_below_real_fields(forest_run):
    scorer = zoo.load(forest_run[0])
    real = StarFields(4, seed=6).read(0, 4)[0].astype(np.float32) / 255
    rng = np.random.default_rng(1)
    discs = np.stack([render_field(rng, Distortion(hard=2.0, flat=2.0))[0] for _ in range(4)])[..., None] / 255
    assert scorer.score(real).min() > scorer.score(discs.astype(np.float32)).max()
