"""Bad input found anywhere — mid-stream inside tf.data, in an option's value, in an output folder, a resume, a file
handed to evaluate.py — stops with one `error: ` line on stderr, exit status 2, no traceback, and nothing
half-written. stderr is captured at the file-descriptor level, so lines printed by C libraries
(libpng, libjpeg) would count too."""
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import keras
import numpy as np
import pytest
import skops.io

import cli
import evaluate
import train
import zoo
from core.errors import ModelError
from core.files import write_atomic
from datasets.galaxy10.__main__ import main as galaxy10_main
from datasets.star_fields import write_cil
from search.embedding import GallerySpec
from search.shards import default_shard_rows, embed_manifest
from zoo.scorers import ForestScorer

TINY = ["--image-size", "16", "--epochs", "1", "--batch-size", "4"]


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


# Bad data found only while training ----------------------------------------------------------------------------

@pytest.fixture
def corrupt_galaxy10(tmp_path):
    """A Galaxy10-layout HDF5 file of 24 images in one gzip chunk each, the chunk of image 13 zeroed out."""
    path = tmp_path / "Galaxy10.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=np.random.default_rng(0).integers(0, 255, (24, 69, 69, 3), np.uint8),
                          chunks=(1, 69, 69, 3), compression="gzip")
        h5.create_dataset("ans", data=(np.arange(24) % 10).astype(np.uint8))
    with h5py.File(path, "r") as h5:
        chunk = h5["images"].id.get_chunk_info(13)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + 8:chunk.byte_offset + chunk.size - 8] = bytes(chunk.size - 16)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow
def test_a_corrupt_hdf5_chunk_names_the_image_and_leaves_no_run(corrupt_galaxy10, tmp_path, one_line_error):
    run_dir = tmp_path / "run"
    err = one_line_error(train.main, ["--model", "classifier", "--dataset", "galaxy10", "--data-dir",
                                      str(corrupt_galaxy10), *TINY, "--out", str(run_dir)])
    assert err.startswith(f"error: image 13 of {corrupt_galaxy10} cannot be read (")
    assert not run_dir.exists()


def test_a_corrupt_hdf5_chunk_stops_an_export_naming_the_image(corrupt_galaxy10, tmp_path, capfd):
    out = tmp_path / "export"
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: galaxy10_main(["--data-dir", str(corrupt_galaxy10), "--export", str(out)]))
    assert stopped.value.code == 2
    bar, err, _ = capfd.readouterr().err.rsplit("\n", 2)     # the progress bar's line, then the error line
    assert bar.startswith("\rexporting Galaxy10.h5:") and "Traceback" not in bar
    assert err.startswith(f"error: image 13 of {corrupt_galaxy10} cannot be read (")
    assert err.endswith(". Download the file again; the export resumes where it stopped")
    assert not (out / "galaxies.csv").exists() and not list(out.rglob("00013.png"))


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"\x89PNG garbage, not an image", b"just some text\n"])
def test_a_broken_file_among_good_images_names_it_and_empties_the_given_out(content, tmp_path, one_line_error):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(10):
        write_png(images / f"g{index:02d}.png", rng.integers(0, 255, (20, 20, 3), np.uint8))
    (images / "g07.png").write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    err = one_line_error(train.main, ["--model", "autoencoder", "--dataset", "folder", "--data-dir",
                                      str(images), *TINY, "--out", str(out)])
    assert err == (f"error: image {images / 'g07.png'} cannot be decoded (corrupt or not really PNG/JPEG). "
                   "Replace or remove the file\n")
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.fixture(scope="module")
def cil_folder(tmp_path_factory):
    return write_cil(tmp_path_factory.mktemp("cil") / "cil", n=4, n_scored=0, n_query=0)


@pytest.mark.slow
def test_an_rgb_field_in_a_cil_folder_stops_a_gan_on_tiles(cil_folder, tmp_path, one_line_error):
    folder = Path(shutil.copytree(cil_folder, tmp_path / "cil"))
    real = [row.split(",")[0] for row in (folder / "labeled.csv").read_text().splitlines()[1:] if row.endswith(",1")]
    field = folder / "labeled" / f"{real[1]}.png"
    write_png(field, np.zeros((1000, 1000, 3), np.uint8))
    err = one_line_error(train.main, ["--model", "dcgan", "--dataset", "cil", "--data-dir", str(folder),
                                      "--tile", "256", "--validation-fraction", "0.5", *TINY,
                                      "--out", str(tmp_path / "run")])
    assert err == (f"error: image {field} (id {real[1]}) is 1000×1000 uint8 with 3 channels, expected 1000×1000 "
                   "uint8 grayscale. Convert it or remove it\n")
    assert not (tmp_path / "run").exists()


def test_a_tile_larger_than_the_images(tmp_path, one_line_error):
    err = one_line_error(train.main, ["--model", "autoencoder", "--limit", "6", "--tile", "5000",
                                      *TINY, "--out", str(tmp_path / "run")])
    assert "is 16×16 px, smaller than --tile 5000. Use --tile 16 or less" in err
    assert not (tmp_path / "run").exists()


# Values passed on unchecked ------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--model", "classifier", "--option", "dropout=2"],
     "option dropout=2 of model 'classifier' must be a number at least 0 and below 1. Use e.g. --option dropout=0.2"),
    (["--model", "vae", "--option", "latent_dim=abc"], "latent_dim=\"abc\" of model 'vae' must be a whole number"),
    (["--model", "vae", "--option", "latent_dim=-4"], "latent_dim=-4 of model 'vae' must be a whole number at least 1"),
    (["--model", "vae", "--option", "latent_dim=0"], "latent_dim=0 of model 'vae' must be a whole number at least 1"),
    (["--model", "vae", "--option", "learning_rate=1e999"], "learning_rate=Infinity of model 'vae' must be a number"),
    (["--model", "cnn-scorer", "--dataset", "star-fields", "--option", "widths=[8,0]"],
     "widths=[8, 0] of model 'cnn-scorer' must be a list of whole numbers of at least 1"),
    (["--model", "vae", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["--model", "vae", "--seed", str(2 ** 40)], "--seed must be a whole number from 0 to 4294967295"),
    (["--model", "vae", "--learning-rate", "inf"], "argument --learning-rate: expected a positive number, got 'inf'"),
    (["--model", "vae", "--learning-rate", "nan"], "argument --learning-rate: expected a positive number, got 'nan'"),
])
def test_option_values_are_checked_before_anything_is_written(argv, message, tmp_path, monkeypatch, one_line_error):
    monkeypatch.chdir(tmp_path)
    assert message in one_line_error(train.main, argv)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_loss_that_turns_nan_stops_the_run_and_says_what_to_change(tmp_path, one_line_error):
    err = one_line_error(train.main, ["--model", "vae", "--limit", "24", *TINY, "--learning-rate", "1e12",
                                      "--out", str(tmp_path / "run")])
    assert "training diverged: " in err and "in epoch 1. Lower --learning-rate (it was 1e+12)" in err
    assert not (tmp_path / "run").exists()


# Output folders -----------------------------------------------------------------------------------------------

def test_out_under_a_file(tmp_path, one_line_error):
    (tmp_path / "a-file").write_text("x")
    err = one_line_error(train.main, ["--model", "vae", "--limit", "8", *TINY, "--out",
                                      str(tmp_path / "a-file" / "run")])
    assert err == (f"error: cannot write to {tmp_path / 'a-file' / 'run'} ({tmp_path / 'a-file'} is a file, not a "
                   "folder). Choose a --out you can write to\n")


def test_out_inside_a_read_only_folder(tmp_path, monkeypatch, one_line_error):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    real_access = os.access     # the tests may run as root, whom file modes do not stop
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    err = one_line_error(evaluate.main, ["neighbours", "--embedding", "pixels", "--image-size", "16",
                                         "--limit", "8", "--k", "2", "--out", str(read_only / "out")])
    assert err == (f"error: cannot write to {read_only / 'out'} ({read_only} is not writable). "
                   "Choose a --out you can write to\n")


# Resume --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    """A finished one-epoch autoencoder run, trained once for the file: tests change copies of it."""
    run_dir = tmp_path_factory.mktemp("runs") / "ae"
    train.main(["--model", "autoencoder", "--limit", "12", *TINY, "--out", str(run_dir)])
    return run_dir


@pytest.fixture
def finished_run(autoencoder_run, tmp_path):
    return Path(shutil.copytree(autoencoder_run, tmp_path / "run"))


@pytest.mark.slow
def test_resume_with_a_damaged_checkpoint_leaves_the_run_unchanged(finished_run, one_line_error):
    before = {path: path.read_bytes() for path in finished_run.rglob("*") if path.is_file()}
    weights = next(finished_run.glob("checkpoint/*.h5"))
    weights.write_bytes(weights.read_bytes()[:200])
    before[weights] = weights.read_bytes()
    err = one_line_error(train.main, ["--resume", str(finished_run), "--epochs", "2"])
    assert err.startswith(f"error: the checkpoint in '{finished_run / 'checkpoint'}' is damaged (")
    assert {path: path.read_bytes() for path in finished_run.rglob("*") if path.is_file()} == before


@pytest.mark.slow
def test_resume_refuses_flags_it_would_ignore(finished_run, one_line_error):
    config = (finished_run / "config.json").read_bytes()
    err = one_line_error(train.main, ["--resume", str(finished_run), "--learning-rate", "0.5", "--batch-size",
                                      "4", "--model", "vae", "--limit", "10"])
    assert err == ("error: --resume continues a run with the settings it was trained with, so --model, --limit, "
                   "--batch-size, --learning-rate cannot change. Drop them (only --epochs applies with --resume)\n")
    assert (finished_run / "config.json").read_bytes() == config


@pytest.mark.slow
def test_resume_keeps_the_first_command_and_records_each_resume(finished_run, monkeypatch):
    first = json.loads((finished_run / "config.json").read_text())
    monkeypatch.setattr(sys, "argv", ["train.py", "--resume", str(finished_run), "--epochs", "2"])
    train.main(["--resume", str(finished_run), "--epochs", "2"])
    config = json.loads((finished_run / "config.json").read_text())
    assert config["command"] == first["command"] and config["epochs"] == 2
    assert [entry["command"] for entry in config["resumed"]] == [sys.argv]
    assert config["resumed"][0]["epochs"] == 2 and "started" in config["resumed"][0]


@pytest.mark.slow
def test_a_run_killed_in_its_first_epoch_resumes_from_epoch_0(finished_run):
    for leftover in ("checkpoint", "model.keras", "history.csv"):    # what a kill before the first epoch's end lacks
        path = finished_run / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    train.main(["--resume", str(finished_run), "--epochs", "2"])
    config = json.loads((finished_run / "config.json").read_text())
    assert config["epochs"] == 2 and config["resumed"][0]["epochs"] == 2
    assert [int(row.split(",")[0]) for row in (finished_run / "history.csv").read_text().splitlines()[1:]] == [0, 1]
    assert (finished_run / "model.keras").is_file() and any((finished_run / "checkpoint").iterdir())


@pytest.mark.slow
def test_a_resumed_gan_continues_both_optimizers(tmp_path):
    run_dir = tmp_path / "dcgan"
    train.main(["--model", "dcgan", "--limit", "18", *TINY, "--out", str(run_dir)])
    steps = int(zoo.load(run_dir).generator_optimizer.iterations.numpy())
    train.main(["--resume", str(run_dir), "--epochs", "2"])
    resumed = zoo.load(run_dir)
    assert steps > 0
    assert int(resumed.generator_optimizer.iterations.numpy()) == 2 * steps
    assert int(resumed.discriminator_optimizer.iterations.numpy()) == 2 * steps * resumed.critic_steps


# Two trainings into one folder ---------------------------------------------------------------------------------

def test_a_folder_held_by_a_running_training_is_refused(tmp_path, one_line_error):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".training.lock").write_text(str(os.getpid()))
    err = one_line_error(train.main, ["--model", "vae", "--limit", "8", *TINY, "--out", str(run_dir)])
    assert err == (f"error: run folder '{run_dir}' is being written by another train.py (process {os.getpid()}). "
                   "Choose another --out or wait for it to finish\n")
    assert sorted(path.name for path in run_dir.iterdir()) == [".training.lock"]


@pytest.mark.slow
def test_a_lock_left_by_a_killed_training_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".training.lock").write_text(finished.stdout.strip())
    train.main(["--model", "autoencoder", "--limit", "8", *TINY, "--out", str(run_dir)])
    assert (run_dir / "model.keras").is_file() and not (run_dir / ".training.lock").exists()


# evaluate.py ---------------------------------------------------------------------------------------------------

def copy_run(run_dir: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("config.json", "model.keras"):
        (to / name).write_bytes((run_dir / name).read_bytes())
    return to


@pytest.mark.slow
def test_a_garbage_model_file_says_it_cannot_be_loaded(autoencoder_run, tmp_path, one_line_error):
    run_dir = copy_run(autoencoder_run, tmp_path / "run")
    (run_dir / "model.keras").write_bytes(b"not a zip file")
    err = one_line_error(evaluate.main, ["generate", "--run", str(run_dir), "--n", "2", "--out",
                                         str(tmp_path / "out")])
    assert err.startswith(f"error: {run_dir / 'model.keras'} cannot be loaded as a Keras model (")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_model_with_a_lambda_layer_is_refused_in_one_line(autoencoder_run, tmp_path, one_line_error):
    run_dir = copy_run(autoencoder_run, tmp_path / "run")
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(run_dir / "model.keras")
    err = one_line_error(evaluate.main, ["generate", "--run", str(run_dir), "--n", "2"])
    assert err == (f"error: {run_dir / 'model.keras'} was refused: it holds Python code (a Lambda layer or a "
                   "function) that Keras does not run when loading in safe mode. Load only runs you trust; retrain "
                   "it without the Lambda layer\n")


def malformed_index(path: Path) -> Path:
    np.savez(path, embeddings=np.zeros((3, 2), np.float32), labels=np.zeros(3), index=np.zeros(4, np.uint8),
             info=np.array(json.dumps([1, 2])))
    return path


@pytest.mark.parametrize("make_index", [
    lambda path: path.write_bytes(b"PK\x03\x04 truncated"),
    lambda path: np.save(path, np.zeros(3)),
    malformed_index,
], ids=["truncated", "plain-npy", "malformed-metadata"])
def test_an_index_file_that_is_not_one(make_index, tmp_path, one_line_error):
    index = tmp_path / "gallery.npz"
    make_index(index)
    if not index.exists():      # np.save adds .npy
        index = tmp_path / "gallery.npz.npy"
    err = one_line_error(evaluate.main, ["neighbours", "--embedding", "pixels", "--image-size", "16",
                                         "--limit", "8", "--k", "2", "--index", str(index),
                                         "--out", str(tmp_path / "out")])
    assert err.startswith(f"error: index file {index} is not an index written by evaluate.py neighbours (")
    assert not (tmp_path / "out").exists()


def test_a_killed_index_build_leaves_nothing_behind_the_next_one(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".gallery-{finished.stdout.strip()}-0123abcd.npz"
    leftover.write_bytes(b"half an index")
    running = tmp_path / f".gallery-{os.getpid()}-4567cdef.npz"      # another writer, still running
    running.write_bytes(b"in progress")
    write_atomic(tmp_path / "gallery.npz", lambda temporary: Path(temporary).write_bytes(b"whole"))
    assert sorted(path.name for path in tmp_path.iterdir()) == [running.name, "gallery.npz"]


def test_generated_pngs_of_mixed_sizes_are_scored(tmp_path, capfd):
    generated = tmp_path / "generated"
    generated.mkdir()
    rng = np.random.default_rng(0)
    for index, size in enumerate((16, 24, 32, 16)):
        write_png(generated / f"image_{index:04d}.png", rng.integers(0, 255, (size, size, 3), np.uint8))
    evaluate.main(["score", "--generated", str(generated), "--real", "synthetic-galaxies", "--n", "4",
                   "--out", str(tmp_path / "score")])
    report = json.loads((tmp_path / "score" / "score.json").read_text())
    assert report["sets"][0]["n"] == 4 and report["sets"][0]["histogram_w1"] > 0


def test_an_rf_scorer_refuses_images_under_its_spectrum_size():
    scorer = zoo.create("rf-scorer", trees=2)
    scorer.forest = object()        # trained or not, the size is checked first
    with pytest.raises(ModelError, match="rf-scorer needs images of at least 64 px for its 32-band power spectrum, "
                                         "got 32 px"):
        scorer.score(np.zeros((2, 32, 32, 1), np.float32))


# Code in a scorer run folder ---------------------------------------------------------------------------------

class Payload:
    """Writes a marker file when unpickled: what a malicious scorer run would do."""

    marker: Path = Path()

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def saved_forest(tmp_path) -> Path:
    """A saved rf-scorer folder whose forest was fitted on 20 random rows of 6 features."""
    from sklearn.ensemble import RandomForestRegressor

    folder = tmp_path / "model"
    folder.mkdir()
    scorer = zoo.create("rf-scorer", bins=4, bands=2, trees=3)
    scorer.forest = RandomForestRegressor(3, random_state=0).fit(np.random.default_rng(0).random((20, 6)),
                                                                  np.arange(20.0))
    scorer.save(folder)
    return folder


def test_a_forest_round_trips_through_skops_without_pickle(tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    folder = saved_forest(tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ["forest.skops", "parts.json"]
    fitted = RandomForestRegressor(3, random_state=0).fit(np.random.default_rng(0).random((20, 6)), np.arange(20.0))
    features = np.random.default_rng(1).random((4, 6))
    np.testing.assert_array_equal(ForestScorer.load(folder).forest.predict(features), fitted.predict(features))


def test_a_pickled_forest_runs_no_code_without_trust_pickle(tmp_path):
    folder = saved_forest(tmp_path)
    (folder / "forest.skops").unlink()
    Payload.marker = tmp_path / "marker.txt"
    (folder / "forest.joblib").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match="forest.joblib is a pickle from an older version, and reading a pickle can "
                                         "run any code. Pass --trust-pickle"):
        ForestScorer.load(folder)
    assert not Payload.marker.exists()


def test_a_skops_file_with_foreign_types_is_refused(tmp_path):
    folder = saved_forest(tmp_path)
    Payload.marker = tmp_path / "marker.txt"
    skops.io.dump({"forest": np.zeros(2), "extra": Payload()}, folder / "forest.skops")
    with pytest.raises(ModelError, match=r"forest.skops was refused: it holds .*Payload.*, which a random forest "
                                         "does not"):
        ForestScorer.load(folder)
    assert not Payload.marker.exists()


def test_trust_pickle_reads_an_old_runs_forest(tmp_path):
    folder = saved_forest(tmp_path)
    import joblib

    joblib.dump(skops.io.load(folder / "forest.skops", trusted=["sklearn.tree._tree.Tree"]), folder / "forest.joblib")
    (folder / "forest.skops").unlink()
    assert ForestScorer.load(folder, trust_pickle=True).forest.n_estimators == 3


# Survey-scale search: embed and index ----------------------------------------------------------------------------

def test_embed_and_index_refuse_bad_input_in_one_line_and_write_nothing(local_ray, tmp_path, one_line_error):
    gallery = ["--embedding", "pixels", "--image-size", "16", "--limit", "20"]
    (tmp_path / "a-file").write_text("x")
    emb, idx = tmp_path / "emb", tmp_path / "idx"
    cases = [
        (["index", "--embeddings", str(emb), "--out", str(idx)],
         f"error: embeddings folder {emb} does not exist. Write it first with 'python evaluate.py embed --out {emb}'"),
        (["index", "--embeddings", str(emb), "--out", str(idx), "--kind", "lsh"],
         "error: argument --kind: invalid choice: 'lsh' (choose from 'auto', 'flat', 'ivf-flat', 'ivf-pq', 'hnsw')"),
        (["embed", *gallery, "--out", str(emb), "--workers", "0"],
         "error: argument --workers: expected a positive whole number, got '0'"),
        (["embed", *gallery, "--out", str(emb), "--workers", "64"],
         "error: --workers 64 is more than the 2 CPUs of the Ray cluster. Use --workers 2 or fewer, or add nodes"),
        (["embed", *gallery, "--out", str(tmp_path / "a-file" / "emb")],
         f"error: cannot write to {tmp_path / 'a-file' / 'emb'} ({tmp_path / 'a-file'} is a file, not a folder)"),
    ]
    for argv, message in cases:
        assert one_line_error(evaluate.main, argv).startswith(message), argv
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]

    emb.mkdir()
    manifest = embed_manifest(GallerySpec(image_size=16, limit=20), "pixels", None, 20, default_shard_rows(20))
    (emb / "manifest.json").write_text(json.dumps(manifest))
    shard = emb / "shard-00000.parquet"
    shard.write_bytes(b"PAR1 a finished shard")
    err = one_line_error(evaluate.main, ["embed", *gallery[:-1], "30", "--out", str(emb)])
    assert err == (f"error: {emb} holds embeddings of another run or data (limit 20 -> 30, n 20 -> 30). Delete it "
                   "to embed again, or pass another --out\n")
    assert shard.read_bytes() == b"PAR1 a finished shard"
    for argv, message in [
        (["index", "--embeddings", str(emb), "--out", str(tmp_path / "a-file" / "idx")],
         f"error: cannot write to {tmp_path / 'a-file' / 'idx'} ({tmp_path / 'a-file'} is a file, not a folder)"),
        (["neighbours", *gallery, "--k", "2", "--index", str(emb), "--out", str(tmp_path / "out")],
         f"error: {emb} is not an index folder written by evaluate.py index (FileNotFoundError). Build one with"),
        (["index", "--embeddings", str(emb), "--out", str(idx)],
         f"error: shard {shard} cannot be read (Parquet magic bytes not found"),
    ]:
        assert one_line_error(evaluate.main, argv).startswith(message), argv
    shard.unlink()
    err = one_line_error(evaluate.main, ["index", "--embeddings", str(emb), "--out", str(idx)])
    assert err == (f"error: {emb} holds 0 of 1 shards (an interrupted embed). Rerun the same 'evaluate.py embed' "
                   "command to finish it\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file", "emb"]
