"""evaluate.py neighbours / retrieval / generate on tiny trained runs: printed tables, written files, and one-line
errors with exit status 2 that leave nothing behind (of reconstruct and serve too)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import listings

import evaluate
from core.runs import TrainConfig
from search.gallery import Gallery
from training import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny one-epoch runs (16 px, 40 synthetic galaxies) of the autoencoder, the classifier and the VAE."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("autoencoder", "classifier", "vae"):
        train(TrainConfig(model=name, limit=40, image_size=16, epochs=1, batch_size=8), run_dir=root / name,
              verbose=0)
    return {name: str(root / name) for name in ("autoencoder", "classifier", "vae")}


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_neighbours_prints_a_table_writes_files_and_reuses_a_saved_index(runs, tmp_path, capsys):
    argv = ["neighbours", "--run", runs["autoencoder"], "--k", "3", "--index", str(tmp_path / "ae.npz"),
            "--out", str(tmp_path / "out")]
    evaluate.main(argv)
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split() == ["rank", "index", "distance", "label", "class_name"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert "searched 40 images in" in printed
    table = read_csv(tmp_path / "out" / "neighbours.csv")
    assert [row["rank"] for row in table] == ["1", "2", "3"]
    assert [row["index"] for row in table] == [line.split()[1] for line in lines[1:4]]
    assert (tmp_path / "out" / "neighbours.png").read_bytes()[:4] == b"\x89PNG"
    saved = Gallery.load(tmp_path / "ae.npz")
    assert saved.info["embedding"] == "latent" and saved.embeddings.shape == (40, 64)  # the model's own default

    evaluate.main(argv)  # answered from the saved index
    assert capsys.readouterr().out.splitlines()[:4] == lines[:4]


def test_neighbours_without_a_run_is_the_pixel_baseline(tmp_path, capsys):
    evaluate.main(["neighbours", "--embedding", "pixels", "--image-size", "16", "--limit", "25", "--k", "2",
                   "--out", str(tmp_path)])
    table = read_csv(tmp_path / "neighbours.csv")
    assert len(table) == 2 and float(table[0]["distance"]) <= float(table[1]["distance"])
    assert "searched 25 images" in capsys.readouterr().out


@pytest.mark.slow
def test_retrieval_prints_and_writes_precision_for_scores_and_pixels(runs, tmp_path, capsys):
    evaluate.main(["retrieval", "--run", runs["classifier"], "--k", "3", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "retrieval.json").read_text())
    assert results["k"] == 3 and results["n_queries"] == 4 and results["n_gallery"] == 36
    for name in ("scores", "pixels"):
        hits = results[name]["precision_at_k"] * 3 * 4      # the share of the 3 × 4 neighbours of the right class
        assert hits == pytest.approx(round(hits), abs=1e-9)
        assert f"{results[name]['precision_at_k']:.3f}" in printed.split(name, 1)[1].splitlines()[0]
    assert (tmp_path / "retrieval.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_generate_is_reproducible_and_near_reports_the_reconstruction(runs, tmp_path, capsys):
    for out in ("a", "b"):
        evaluate.main(["generate", "--run", runs["vae"], "--n", "4", "--seed", "1", "--out", str(tmp_path / out)])
    assert "4 images of 16×16×3 from vae" in capsys.readouterr().out
    for k in range(4):
        name = f"image_{k:04d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    evaluate.main(["generate", "--run", runs["vae"], "--near", "milky-way", "--noise", "0.5", "--n", "2",
                   "--out", str(tmp_path / "near")])
    summary = json.loads((tmp_path / "near" / "generation.json").read_text())
    assert summary["noise"] == 0.5 and summary["n"] == 2 and summary["run"] == runs["vae"]
    assert f"reconstruction MSE: milky-way {summary['reconstruction_mse']['query']:.5f}" in capsys.readouterr().out


BAD_INPUT = [
    (["neighbours", "--run", "{classifier}", "--embedding", "latent"],
     "error: model 'classifier' has no latent space. Use --embedding scores or a run of autoencoder/simclr/vae"),
    (["neighbours", "--run", "{autoencoder}", "--k", "0"], "error: argument --k: expected a positive whole number"),
    (["neighbours", "--run", "{autoencoder}", "--k", "41"],
     "error: --k must be between 1 and the 40 images in the gallery, got 41. Use e.g. --k 10"),
    (["neighbours", "--run", "{autoencoder}", "--query", "missing.png"],
     "error: query image missing.png does not exist. Pass --query milky-way or a PNG/JPEG file"),
    (["neighbours", "--run", "{autoencoder}", "--query", "broken.png"], "broken.png cannot be decoded"),
    (["neighbours", "--run", "{autoencoder}", "--image-size", "32"], "was trained at 16 px, got --image-size 32"),
    (["neighbours", "--run", "not-a-run"], "error: 'not-a-run' is not a run folder"),
    (["retrieval", "--k", "5"], "error: retrieval needs --run"),
    (["generate", "--run", "{autoencoder}"], "error: model 'autoencoder' cannot sample from a prior"),
    (["generate", "--run", "{classifier}", "--near", "milky-way"], "model 'classifier' cannot encode and decode"),
    (["generate", "--run", "{vae}", "--noise", "0.5"], "error: --noise only applies to --near"),
    (["generate", "--n", "3"], "error: the following arguments are required: --run"),
    (["reconstruct", "--judge", "{classifier}"], "error: the following arguments are required: --run"),
    (["reconstruct", "--run", "{vae}", "--judge", "not-a-run"], "error: 'not-a-run' is not a finished run folder"),
    (["reconstruct", "--run", "{classifier}"],
     "error: run '{classifier}' is a classifier, which cannot reconstruct images. Pass a run of autoencoder/vae"),
    (["reconstruct", "--run", "{vae}", "--judge", "{vae}"],
     "error: --judge run '{vae}' is a vae, which does not classify images. Pass a run of classifier"),
    (["reconstruct", "--run", "{vae}", "--out", "a-file/out"],
     "error: cannot write to a-file/out (a-file is a file, not a folder). Choose a --out you can write to"),
    (["serve", "--run", "not-a-run", "--index", "g.npz", "--port", "0"], "error: 'not-a-run' is not a run folder"),
    (["serve", "--run", "{autoencoder}", "--index", "g.npz", "--port", "70000"],
     "error: argument --port: expected a port number from 0 to 65535, got '70000'"),
    (["serve", "--run", "{autoencoder}", "--index", "g.npz", "--port", "http"], "expected a port number from 0 to"),
    (["serve", "--run", "{autoencoder}", "--index", "g.npz", "--port", "0", "--dataset", "sdss"],
     "error: unknown dataset 'sdss'. Choose one of: synthetic-galaxies, galaxy10,"),
    (["serve", "--run", "{autoencoder}"], "error: the following arguments are required: --index"),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, runs, tmp_path, monkeypatch, one_line_error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    (tmp_path / "a-file").write_text("in the way")
    before = listings([tmp_path, *runs.values()])
    assert message.format(**runs) in one_line_error(evaluate.main, [item.format(**runs) for item in argv])
    assert listings(before) == before


@pytest.mark.slow
def test_a_model_without_a_latent_space_exits_2_from_the_shell(runs, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "neighbours", "--run", runs["classifier"],
                             "--embedding", "latent"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == ("error: model 'classifier' has no latent space. "
                             "Use --embedding scores or a run of autoencoder/simclr/vae\n")
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
    assert not any((Path(run) / "neighbours").exists() for run in runs.values())
