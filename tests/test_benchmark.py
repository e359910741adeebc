"""evaluate.py benchmark: FLOPs against a hand count, the JSON/Markdown/PNG it writes on tiny settings, devices
reported absent, TensorFlow-only parts recognised, --compare's speed-up and cost, and one-line errors."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import cli
import evaluate
import zoo
from core.errors import DataError
from evaluation import benchmark
from evaluation.benchmark import flops, measure

RECORD_KEYS = {"model", "device", "mode", "status", "reason", "images_per_s", "ms_per_step", "cpu_ms_per_step",
               "images", "steps", "batch_size", "image_size", "backend", "versions", "precision", "peak_memory_mb"}


def test_seed_cnn_training_flops_match_a_hand_count():
    model = zoo.create("classifier", image_size=64, num_classes=5)
    assert model.count_params() == 155_013
    conv = [2 * side * side * 3 * 3 * c_in * 32 for side, c_in in ((64, 3), (32, 32), (16, 32))]
    dense = [2 * 8 * 8 * 32 * 64, 2 * 64 * 64, 2 * 64 * 5]      # 2 FLOPs per multiply-add
    assert flops.forward_flops_per_image(model) == sum(conv + dense) == 30_941_824
    assert flops.training_flops_per_image(model) == 3 * 30_941_824      # forward + backward: 3 × forward


def test_autoencoder_flops_count_transposed_convolutions_on_their_input_side():
    model = zoo.create("autoencoder", image_size=16)
    encoder = [2 * side * side * 9 * c_in * 32 for side, c_in in ((16, 3), (8, 32), (4, 32), (2, 32))] + [2 * 32 * 64]
    decoder = [2 * 64 * 32] + [2 * side * side * 9 * 32 * 32 for side in (1, 2, 4, 8)] + [2 * 16 * 16 * 9 * 32 * 3]
    assert flops.forward_flops_per_image(model) == sum(encoder + decoder) == 4_007_936


def test_gans_get_no_training_flops_count():
    """A GAN step is several forward and backward passes through two networks, not 3 × one forward pass."""
    assert flops.training_flops_per_image(zoo.create("dcgan", image_size=16)) is None
    classifier = zoo.create("classifier", image_size=16)
    assert flops.training_flops_per_image(classifier) == 3 * flops.forward_flops_per_image(classifier) > 0


@pytest.mark.slow
def test_benchmark_writes_json_table_and_chart(tmp_path, capsys):
    out = tmp_path / "bench"
    evaluate.main(["benchmark", "--models", "classifier,vae", "--devices", "cpu,gpu", "--steps", "2", "--warmup", "1",
                   "--image-size", "16", "--batch-size", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    result = json.loads((out / "benchmark.json").read_text())
    records = {(r["model"], r["device"], r["mode"]): r for r in result["records"]}
    assert all(RECORD_KEYS <= set(r) for r in result["records"] if r["mode"] != "device")
    expected = {("classifier", "train"), ("classifier", "classify"), ("classifier", "fit-in-memory"),
                ("classifier", "fit-pipeline"), ("vae", "train"), ("vae", "encode"), ("vae", "reconstruct"),
                ("vae", "generate"), ("vae", "fit-in-memory"), ("vae", "fit-pipeline")}
    expected |= {(source, mode) for source in ("synthetic-galaxies", "galaxy10-hdf5", "star-field-tiles")
                 for mode in ("pipeline-first-pass", "pipeline-cached")}
    assert {(model, mode) for model, device, mode in records if device == "cpu"} == expected
    measured = [r for r in result["records"] if r["device"] == "cpu"]
    assert all(r["status"] == "ok" and r["images_per_s"] > 0 and r["ms_per_step"] > 0 and r["cpu_ms_per_step"] > 0
               for r in measured)
    for r in measured:  # images/s and ms/step describe the same steps
        assert r["images_per_s"] * r["ms_per_step"] / 1000 == pytest.approx(r["images"] / r["steps"])
    assert all(r["backend"] == keras.backend.backend() and r["versions"]["keras"] == keras.__version__
               and r["batch_size"] == 4 for r in measured)

    gpu = [r for r in result["records"] if r["device"] == "gpu"]
    assert len(gpu) == 1 and gpu[0]["status"] == "absent" and "sees no GPU" in gpu[0]["reason"]
    assert result["meta"]["devices"]["gpu"]["present"] is False

    train = records["classifier", "cpu", "train"]
    assert train["images"] == 8 and train["steps"] == 2 and train["compile_s"] > 0
    assert train["jit_compile"] is (keras.backend.backend() == "jax")  # TensorFlow: no XLA on CPU
    assert train["gflop_per_image"] == pytest.approx(3 * flops.forward_flops_per_image(
        zoo.create("classifier", image_size=16)) / 1e9)
    assert train["achieved_gflops"] == pytest.approx(train["gflop_per_image"] * 4 / train["median_ms_per_step"] * 1000)
    assert train["percent_of_peak"] == pytest.approx(
        100 * train["achieved_gflops"] / result["meta"]["devices"]["cpu"]["matmul_gflops"])
    pipeline = records["vae", "cpu", "fit-pipeline"]
    in_memory = records["vae", "cpu", "fit-in-memory"]
    assert pipeline["overhead_percent"] == pytest.approx(
        100 * (in_memory["images_per_s"] / pipeline["images_per_s"] - 1))
    assert pipeline["cpu_overhead_percent"] == pytest.approx(
        100 * (pipeline["cpu_ms_per_step"] / in_memory["cpu_ms_per_step"] - 1))
    assert records["star-field-tiles", "cpu", "pipeline-first-pass"]["images"] == 16  # one field, 4 × 4 tiles
    assert records["galaxy10-hdf5", "cpu", "pipeline-cached"]["images"] == 8

    table = (out / "benchmark.md").read_text()
    assert "| classifier | train |" in table and "| vae | generate |" in table and "| absent |" in table
    assert "gpu: absent" in table and table.strip() in printed
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_xla_and_mixed_precision_are_applied_and_recorded(tmp_path):
    config = benchmark.BenchmarkConfig(models=("classifier",), devices=("cpu",), modes=("infer",), batch_size=4,
                                       image_size=16, steps=1, warmup=1, xla=True, mixed_precision=True)
    (classify,) = benchmark.run(config, progress=lambda line: None)["records"]
    assert classify["status"] == "ok" and classify["jit_compile"] is True
    assert classify["precision"] == "mixed_bfloat16"  # on CPU; mixed_float16 on GPU
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards


def test_without_tensorflow_the_pipeline_measurements_are_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(measure, "tensorflow_available", lambda: False)
    config = benchmark.BenchmarkConfig(models=(), batch_size=4, image_size=16, steps=1)
    records = measure.measure_pipelines(config, progress=lambda line: None)
    assert len(records) == 6 and {r["status"] for r in records} == {"skipped"}
    assert all(r["reason"] == "TensorFlow is not installed; the tf.data pipeline needs it" for r in records)


ABSENT_ON_A_JAX_ONLY_MACHINE = ("tensorflow", "tensorflow_datasets", "faiss", "ray")


@pytest.mark.jax
@pytest.mark.slow
def test_the_benchmark_and_its_scaling_part_import_where_only_jax_is_installed():
    """A GPU machine may have JAX but no TensorFlow, FAISS or Ray: evaluate.py's parser, the benchmark and its
    --distribute part must import without them (a fresh process where importing them fails)."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys

        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {ABSENT_ON_A_JAX_ONLY_MACHINE!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Absent())
        import evaluate
        evaluate.build_parser().parse_args(["benchmark", "--distribute", "data-parallel", "--out", "unused"])
        import evaluation.benchmark.measure, evaluation.benchmark.scaling
        print("imported")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "KERAS_BACKEND": "jax"})
    assert result.returncode == 0 and result.stdout.split()[-1:] == ["imported"], result.stderr[-3000:]


def write_result(path, records):
    path.write_text(json.dumps({"meta": {}, "records": [
        {"model": model, "mode": mode, "device": device, "status": "ok", "images_per_s": speed}
        for model, mode, device, speed in records]}))
    return path


def test_compare_gives_speed_up_and_cost_per_million_images(tmp_path, capsys):
    gpu = write_result(tmp_path / "gpu.json", [("classifier", "train", "gpu", 1000.0), ("vae", "train", "gpu", 400.0),
                                              ("classifier", "train", "cpu", 90.0), ("dcgan", "train", "gpu", 10.0)])
    cpu = write_result(tmp_path / "cpu.json", [("classifier", "train", "cpu", 50.0), ("vae", "train", "cpu", 40.0)])
    rows = benchmark.compare(benchmark.load_result(gpu), benchmark.load_result(cpu))
    assert [(r["model"], r["mode"]) for r in rows] == [("classifier", "train"), ("vae", "train")]
    assert rows[0]["speed_up"] == pytest.approx(20.0) and rows[1]["speed_up"] == pytest.approx(10.0)
    # 1M images at 1000 images/s take 1000 s: 12.24 $/h × 1000/3600 h; on the CPU 20000 s at 0.17 $/h
    assert rows[0]["a_usd_per_million"] == pytest.approx(3.4)
    assert rows[0]["b_usd_per_million"] == pytest.approx(0.9444, abs=1e-4)

    evaluate.main(["benchmark", "--compare", str(gpu), str(cpu), "--price-a", "3.06", "--out", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["classifier", "train", "1,000.0", "50.0", "20.00×", "0.850", "0.944"]
    assert json.loads((tmp_path / "compare.json").read_text())[1]["speed_up"] == pytest.approx(10.0)

    evaluate.main(["benchmark", "--compare", str(gpu), str(gpu), "--device-b", "cpu"])
    assert capsys.readouterr().out.splitlines()[1].split()[4] == f"{1000 / 90:.2f}×"  # one machine's GPU vs CPU


BAD_INPUT = [
    (["--devices", "cpu,tpu", "--out", "o"], "error: argument --devices: unknown device 'tpu', use some of cpu,gpu"),
    (["--modes", "train,speed", "--out", "o"], "error: argument --modes: unknown mode 'speed'"),
    (["--steps", "0", "--out", "o"], "error: argument --steps: expected a positive whole number, got '0'"),
    ([], "error: no --out given. Pass a folder for the results"),
    (["--image-size", "12", "--out", "o"], "error: --image-size must be a positive multiple of 8, got 12"),
    (["--models", "classifier,nope", "--out", "o"], "error: unknown model 'nope'. Choose one of: autoencoder"),
    (["--compare", "missing.json", "missing.json"], "error: 'missing.json' is not a readable benchmark.json"),
    (["--distribute", "mirrored", "--replicas", "1,two", "--out", "o"],
     "error: argument --replicas: expected whole numbers separated by commas such as 1,2, got '1,two'. "),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: evaluate.main(["benchmark", *argv]))
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_compare_without_shared_measurements_says_what_to_pass(tmp_path):
    cpu_only = write_result(tmp_path / "cpu.json", [("classifier", "train", "cpu", 50.0)])
    with pytest.raises(DataError, match="share no measurement of A on gpu and B on cpu"):
        benchmark.compare(benchmark.load_result(cpu_only), benchmark.load_result(cpu_only))


def test_timed_loops_stop_after_max_seconds_but_time_at_least_one_step():
    calls = []
    assert measure.timed_steps(lambda: calls.append(1), 5, max_seconds=1e9)[1] == 5
    assert measure.timed_steps(lambda: calls.append(1), 5, max_seconds=0)[1] == 1
    assert len(calls) == 6
    walls = []
    elapsed, steps = measure.timed_steps(lambda: time.sleep(0.02), 3, max_seconds=1e9, step_walls=walls)
    assert steps == 3 and len(walls) == 3 and all(0.02 <= wall < 1 for wall in walls)
    assert sum(walls) == pytest.approx(elapsed.wall, abs=0.005)           # each step's wall, adding up to the loop's


@pytest.mark.slow
def test_scorers_train_on_scored_fields_and_score_what_they_learned():
    config = benchmark.BenchmarkConfig(models=("rf-scorer",), devices=("cpu",), modes=("train", "infer"),
                                       batch_size=4, steps=1, warmup=0)
    train, score = benchmark.run(config, progress=lambda line: None)["records"]
    assert (train["mode"], train["status"], train["images"], train["image_size"]) == ("train", "ok", 4, 1000)
    assert (score["mode"], score["status"], score["images"]) == ("score", "ok", 4)
    assert score["images_per_s"] > 0


def test_the_encoder_gallery_is_lower_dimensional_than_the_isotropic_one(tmp_path):
    """Both galleries are 64-d; most of the encoder gallery's variance lies in a few principal components, as in the
    encoder's own vectors its mixture was fitted to, while the isotropic one (1,000 clusters, as in a gallery of
    1M) spreads it over all of them."""
    from sklearn.decomposition import PCA

    from search.shards import open_embeddings, read_columns, shard_vectors
    from search.synthetic import ENCODER_MIXTURE, write_synthetic

    explained = {}
    for gallery in ("isotropic", "encoder"):
        assert write_synthetic(tmp_path / gallery, 20_000, 64, gallery=gallery, shard_rows=5_000, cluster_size=20) == 64
        shards = open_embeddings(tmp_path / gallery)[1]
        vectors = np.concatenate([shard_vectors(table) for _, table in read_columns(shards, ["embedding"])])
        assert vectors.shape == (20_000, 64) and np.load(tmp_path / gallery / "queries.npy").shape == (1_000, 64)
        explained[gallery] = np.cumsum(PCA().fit(vectors).explained_variance_ratio_)
    assert explained["encoder"][15] > 0.9 > 0.4 > explained["isotropic"][15]
    fitted = np.load(ENCODER_MIXTURE)
    np.testing.assert_allclose(explained["encoder"][15], fitted["explained"][:16].sum() / fitted["explained"][:64].sum(),
                               atol=0.02)


@pytest.mark.slow
def test_the_search_benchmark_writes_its_table_and_json(tmp_path, capsys):
    evaluate.main(["benchmark", "--modes", "search", "--sizes", "2k", "--kinds", "flat", "--gallery", "encoder",
                   "--out", str(tmp_path)])
    result = json.loads((tmp_path / "search.json").read_text())
    (record,) = result["records"]
    assert (record["gallery"], record["n"], record["kind"], record["recall_at_10"], record["parameters"]) == (
        "encoder", 2000, "flat", 1.0, {})
    single = record["single"]
    assert single["p50_ms"] <= single["p99_ms"] and single["cpu_p50_ms"] <= single["cpu_p99_ms"]
    assert record["dimension"] == 64 and record["disk_mb"] > 2000 * 64 * 4 / 2**20
    table = (tmp_path / "search.md").read_text()
    assert table.splitlines()[4].startswith("| encoder | 2,000 | flat | - | ")
    assert table.splitlines()[4].endswith("| 1.000 |")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["search.json", "search.md"]
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(["benchmark", "--modes", "search", "--sizes", "12"])
    assert "expected sizes of at least 1000 such as 100k,1M, got '12'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(["benchmark", "--modes", "search", "--gallery", "gaia"])
    assert "unknown gallery 'gaia', use some of isotropic,encoder" in capsys.readouterr().err
