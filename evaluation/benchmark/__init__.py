"""How fast each registered model trains, infers and generates, per device: `python evaluate.py benchmark`.

Every measurement makes a first call on one batch of `batch_size` images (its time, which includes
tracing and compiling, is `compile_s`) and `warmup` untimed ones, then times `steps` batches, or fewer
once `max_seconds` are spent (slow models on a CPU; each record says how many steps ran):
- train: `steps` train_on_batch calls on synthetic tensors; a model that is not one Keras model (naive,
  layered, the scorers) is timed on one `fit_source` call over one batch of fields (built-in scored fields for
  the scorers), its whole training as train.py runs it; the scorers' `score` is timed on what that call trained;
- classify / encode / reconstruct / score: the capability methods, generate: `generate(n, seed)`, each
  called on all `steps` batches at once (fewer per call for 1000 px fields), batch_size set;
- fit-in-memory / fit-pipeline: a Keras fit epoch of `steps` batches from tensors in memory against one
  from `datasets.pipeline.make_dataset` (cache, shuffle, flips and rotations, prefetch): the tf.data overhead
  (fastest of FIT_REPEATS alternating epochs each, after a warm-up epoch);
- pipeline-first-pass / pipeline-cached: tf.data alone (no model), from the synthetic galaxies, from a
  Galaxy10-format HDF5 file written for the benchmark, and from 1000×1000 star fields cut into 256 px tiles.

Galaxy models run at --image-size; star-field models on whole fields of their own size (1000 px). The
benchmark asks the registry what each model can do, so new entries are measured without editing this file.
It runs on any Keras backend: tf.data measurements need TensorFlow and are skipped with a reason without
it; every model's train step runs on TensorFlow and JAX. `--distribute` measures training on 1, 2, ...
devices instead (scaling.py). A device the
backend does not see is reported as absent. The seed CNN's training FLOPs are counted from its layers and
compared with a float32 matmul measured in the same run (achieved GFLOP/s and % of that peak).

`--modes search,embed` measure the survey-scale search instead (search.py: index build, disk, memory, latency
and recall at 100k-10M vectors; Ray embedding against one process), written as search.json and search.md.

The package: config (settings and constants), flops, inputs (synthetic data), measure (the records and `run`),
report (JSON, Markdown, PNG), compare (two runs), search (`--modes search,embed`) and scaling (`--distribute`);
the machine itself (devices, memory, the matmul peak) is described by core.machine.
"""
from evaluation.benchmark.compare import compare, compare_table, load_result
from evaluation.benchmark.config import DEVICES, MODES, PRICES, SCALE_MODES, BenchmarkConfig
from evaluation.benchmark.measure import run
from evaluation.benchmark.report import markdown_table, scale_table, write_report, write_scale_report

__all__ = ["DEVICES", "MODES", "PRICES", "SCALE_MODES", "BenchmarkConfig", "compare", "compare_table", "load_result",
           "markdown_table", "run", "scale_table", "write_report", "write_scale_report"]
