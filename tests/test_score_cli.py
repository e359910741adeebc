"""evaluate.py score on tiny trained runs: score.json has exactly the documented keys, the learned score is the
scorer's on the run's own samples, an all-black set is called collapsed, galaxies work without a scorer, tile runs
are stitched into whole fields, and bad input stops with one line and exit status 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import evaluate
import zoo
from core import metrics
from core.errors import DataError
from core.files import write_png
from core.runs import TrainConfig
from datasets.pipeline import stitch_tiles, tile_offsets
from datasets.star_fields import StarFields
from evaluation.generation import batch_seed
from evaluation.score import REAL_KEYS, REPORT_KEYS, SET_KEYS, stitched_batches
from training import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A naive run on 12 star fields, a 30-tree forest on 40 scored fields, a one-epoch 32 px CNN scorer, and a
    folder of six all-black 1000 px fields."""
    root = tmp_path_factory.mktemp("score")
    train(TrainConfig(model="naive", dataset="star-fields", limit=12), run_dir=root / "naive", verbose=0)
    train(TrainConfig(model="rf-scorer", dataset="star-fields", limit=40, options={"trees": 30}),
          run_dir=root / "rf", verbose=0)
    train(TrainConfig(model="cnn-scorer", dataset="star-fields", limit=16, epochs=1,
                      options={"input_size": 32, "widths": [4, 8], "feature_dim": 8}), run_dir=root / "cnn", verbose=0)
    for i in range(6):
        write_png(root / "black" / f"image_{i:04d}.png", np.zeros((1000, 1000), np.float32))
    return {name: str(root / name) for name in ("naive", "rf", "cnn", "black")}


@pytest.mark.slow
def test_score_writes_the_documented_keys_and_ranks_the_sets(runs, tmp_path, capsys):
    out = tmp_path / "out"
    evaluate.main(["score", "--run", runs["naive"], "--generated", runs["black"], "--n", "6", "--scorer", runs["rf"],
                   "--features", runs["cnn"], "--out", str(out)])
    report = json.loads((out / "score.json").read_text())
    assert tuple(report) == REPORT_KEYS and tuple(report["real"]) == REAL_KEYS
    assert [tuple(s) for s in report["sets"]] == [SET_KEYS, SET_KEYS]
    naive, black = report["sets"]
    assert (naive["name"], black["name"]) == ("naive", "black")
    assert naive["n"] == black["n"] == report["real"]["n"] == 6
    assert naive["image_shape"] == black["image_shape"] == [1000, 1000, 1]

    # the learned score is the forest's on exactly the images `evaluate.py generate --n 6` makes
    generated = zoo.load(runs["naive"]).generate(6, seed=batch_seed(0, 0))
    assert naive["scorer"]["mean"] == pytest.approx(float(zoo.load(runs["rf"]).score(generated).mean()), rel=1e-6)
    assert report["ranked_by"] == "scorer mean"
    assert report["ranking"] == sorted(["naive", "black"], key=lambda n: -{"naive": naive, "black": black}[n][
        "scorer"]["mean"])

    assert black["collapse"]["collapsed"] and black["collapse"]["black_fraction"] == 1.0
    assert black["collapse"]["reasons"][0] == "100% of the images are black"
    assert not naive["collapse"]["collapsed"] and naive["collapse"]["black_fraction"] == 0.0
    assert black["source_count"]["mean"] == 0.0
    stars = [len(StarFields(6, seed=0).field(i)[1]) for i in range(6)]
    assert report["real"]["source_count"]["mean"] == pytest.approx(np.mean(stars))
    real_fields = StarFields(6, seed=0).read(0, 6)[0].astype(np.float32) / 255
    # W1 between an all-black set and the real pixels is the real mean grey level (on the [0, 1] scale)
    assert black["histogram_w1"] == pytest.approx(float(np.mean(np.round(real_fields * 255))) / 255, rel=1e-6)
    assert naive["histogram_w1"] > 0

    # the domain metrics are on the --features run's encode of the real fields and of each set
    features = zoo.load(runs["cnn"])
    real_features = features.encode(real_fields).astype(np.float64)
    black_features = features.encode(np.zeros((6, 1000, 1000, 1), np.float32)).astype(np.float64)
    # six identical black images: no spread, so FID is the squared mean shift plus the real features' spread
    expected_fid = (np.sum((black_features.mean(axis=0) - real_features.mean(axis=0)) ** 2)
                    + np.trace(np.cov(real_features, rowvar=False)))
    assert black["fid_domain"] == pytest.approx(expected_fid, rel=1e-4, abs=1e-9)
    for found, images in ((naive, generated), (black, np.zeros((6, 1000, 1000, 1), np.float32))):
        expected = metrics.precision_recall(real_features, features.encode(images).astype(np.float64))
        assert (found["precision"], found["recall"]) == pytest.approx((expected["precision"], expected["recall"]))
        assert found["kid_domain"]["subsets"] == 50 and found["kid_domain"]["subset_size"] == 6
        assert set(found["kid_domain"]) == {"mean", "std", "subsets", "subset_size"}
    assert (out / "score.png").read_bytes()[:4] == b"\x89PNG"

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["set", "n", "score", "(min-max)"]
    assert [line.split()[0] for line in lines[1:4]] == ["real", *report["ranking"]]
    assert "collapsed" in lines[1 + 1 + report["ranking"].index("black")]
    assert lines[-1].startswith("ranked by scorer mean; wrote ")


def test_galaxies_without_scorer_or_features_give_null_values_and_rank_by_histogram_w1(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        write_png(tmp_path / "noise" / f"image_{i:04d}.png", rng.random((32, 32, 3), dtype=np.float32))
        write_png(tmp_path / "dark" / f"image_{i:04d}.png", rng.random((32, 32, 3), dtype=np.float32) * 0.1)
    evaluate.main(["score", "--generated", str(tmp_path / "noise"), "--generated", str(tmp_path / "dark"), "--n", "5",
                   "--real", "synthetic-galaxies", "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "score.json").read_text())
    assert report["ranked_by"] == "histogram_w1" and report["ranking"] == ["dark", "noise"]  # galaxies: a dark sky
    for found in report["sets"]:
        assert found["image_shape"] == [32, 32, 3]
        assert [found[key] for key in ("scorer", "fid_domain", "kid_domain", "precision", "recall", "source_count")] \
            == [None] * 6
    assert report["real"]["image_shape"] == [32, 32, 3] and report["real"]["source_count"] is None


def test_tile_runs_are_stitched_into_whole_fields():
    model = zoo.create("dcgan", image_size=16, channels=1)
    fields = list(stitched_batches(model, n=3, seed=4, batch_size=2, tile=16, field_side=40))
    assert [f.shape for f in fields] == [(2, 40, 40, 1), (1, 40, 40, 1)]
    count = len(tile_offsets(40, 16)) ** 2                   # 3 × 3 tiles of 16 px cover 40 px
    tiles = model.generate(2 * count, seed=batch_seed(4, 0))   # the first batch: two fields
    np.testing.assert_array_equal(fields[0][1], stitch_tiles(tiles[count:], 40, 40))


@pytest.mark.slow
def test_bad_input_stops_before_writing(runs, tmp_path):
    with pytest.raises(DataError, match="nothing to score. Pass --run RUN"):
        evaluate.main(["score", "--out", str(tmp_path / "a")])
    with pytest.raises(DataError, match="holds 0 PNG images, at least 4 are needed"):
        evaluate.main(["score", "--generated", str(tmp_path), "--out", str(tmp_path / "b")])
    result = subprocess.run([sys.executable, "evaluate.py", "score", "--run", runs["naive"], "--scorer", runs["naive"],
                             "--out", str(tmp_path / "c")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: --scorer run '{runs['naive']}' is a naive, which does not score "
                                          "images. Pass a run of cnn-scorer/rf-scorer"]
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_adversarial_fields_are_scored_beside_the_real_ones_with_their_gap(runs, tmp_path, capsys):
    out = tmp_path / "attack"
    evaluate.main(["score", "--run", runs["naive"], "--n", "4", "--scorer", runs["rf"], "--adversarial", "4",
                   "--out", str(out)])
    report = json.loads((out / "score.json").read_text())
    attack = report["adversarial"]
    assert tuple(attack) == (*SET_KEYS, "gap") and attack["n"] == 4 and report["ranking"] == ["naive"]
    assert attack["histogram_w1"] == 0.0         # built from the same four real fields: their histogram exactly
    assert attack["gap"] == pytest.approx(report["real"]["scorer"]["mean"] - attack["scorer"]["mean"])
    assert any(line.startswith(f"adversarial (gap {attack['gap']:.2f})") for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("value", ["0", "many"])
def test_adversarial_counts_that_are_not_positive_stop_with_one_line(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        evaluate.main(["score", "--generated", str(tmp_path), "--adversarial", value, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and len(error.splitlines()) == 1
    assert error.startswith(f"error: argument --adversarial: expected a positive whole number, got '{value}'.")
    assert not (tmp_path / "out").exists()


def test_adversarial_fields_need_a_scorer_and_star_fields(tmp_path):
    with pytest.raises(DataError, match="--adversarial needs at least 4 fields, a --scorer run and star fields as "
                                        "--real .star-fields or cil., got 8 fields, scorer None, real star-fields"):
        evaluate.main(["score", "--generated", str(tmp_path), "--adversarial", "8", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
