"""make paper's pipeline at toy scale: five runs trained, every model's fields scored by the forest, and
figure1.png, figure4.png, table1.md and results.json written with the seed's figures beside ours."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.paper import MODELS, SEED_TRAINING, PaperConfig, make_paper, orderings

TOY = PaperConfig(n=4, fields=12, scored_fields=20, cnn_epochs=1, layered_epochs=1, layered_coordinate_epochs=1,
                  stylegan_fields=4, stylegan_image_size=16, stylegan_start_size=16, stylegan_images_per_stage=8,
                  stylegan_batch_size=4, stylegan_steps_per_epoch=1, stylegan_epochs=1,
                  stylegan_validation_fraction=0.25, adversarial=4)
ROOT = Path(__file__).resolve().parents[1]


def test_orderings_compare_each_pair_of_the_seeds_ranking():
    found = orderings({"naive": 5.4, "stylegan": 1.2, "layered": 5.6})
    assert found["seed"] == ["layered", "stylegan", "naive"] and found["here"] == ["layered", "naive", "stylegan"]
    assert found["pairs"] == {"layered > stylegan": True, "layered > naive": True, "stylegan > naive": False}
    assert not found["all_match"] and orderings({"naive": 0.3, "stylegan": 1.2, "layered": 2.0})["all_match"]


@pytest.mark.slow
def test_make_paper_trains_scores_and_writes_the_figures_table_and_results(tmp_path):
    out, runs = tmp_path / "paper", tmp_path / "runs"
    results = make_paper(out, TOY, runs, log=lambda line: None)

    assert sorted(p.name for p in runs.iterdir()) == sorted([*MODELS, "rf-scorer", "cnn-scorer"])
    for name in ("figure1.png", "figure4.png", "score/score.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))

    score = json.loads((out / "score" / "score.json").read_text())
    assert [s["n"] for s in score["sets"]] == [4, 4, 4] and score["ranked_by"] == "scorer mean"
    means = {s["name"]: s["scorer"]["mean"] for s in score["sets"]}
    assert {name: results["scores"][name]["mean"] for name in MODELS} == means
    assert {name: results["scores"][name] for name in MODELS} == {s["name"]: s["scorer"] for s in score["sets"]}
    assert results["orderings"] == orderings(means)
    for name in ("rf-scorer", "cnn-scorer"):     # the held-out MAE each scorer's run wrote last in history.csv
        with open(runs / name / "history.csv") as handle:
            last = [row for row in csv.DictReader(handle) if row.get("val_mae_of_mean")][-1]
        mae = results["mae"][name]
        assert mae["here"] == pytest.approx(float(last["val_mae"]))
        assert mae["predicting_the_mean"] == pytest.approx(float(last["val_mae_of_mean"])) and mae["here"] > 0
    assert results["mae"]["rf-scorer"]["seed"] == 0.116 and results["mae"]["cnn-scorer"]["seed"] == 0.63
    assert set(results["training"]) == {*MODELS, "rf-scorer", "cnn-scorer"}
    assert all(run["wall_s"] > 0 for run in results["training"].values())

    table = (out / "table1.md").read_text().splitlines()
    assert len(table) == 2 + 5 and table[0].startswith("| model | seed hardware |")
    assert [row.split("|")[1].strip() for row in table[2:]] == ["naive", "StyleGAN", "layered", "rf-scorer",
                                                                "cnn-scorer"]
    seed_hours = [float(row.split("|")[4]) for row in table[2:5]]
    assert seed_hours == [SEED_TRAINING[name][2] for name in MODELS]
    wall = float(table[2].split("|")[7].split()[0])
    assert wall == pytest.approx(results["training"]["naive"]["wall_s"], abs=0.5)
    assert np.isfinite([results["distances"][name]["histogram_w1"] for name in MODELS]).all()


@pytest.mark.slow
def test_too_few_fields_stop_before_any_training(tmp_path):
    result = subprocess.run([sys.executable, "evaluate.py", "paper", "--n", "3", "--out", str(tmp_path / "paper"),
                             "--runs", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: --n must be at least 4 fields per model, got 3. Use e.g. --n 500\n"
    assert not (tmp_path / "paper").exists() and not (tmp_path / "runs").exists()
