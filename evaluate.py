"""Evaluate trained zoo models: `python evaluate.py COMMAND ...` (`--help` lists the commands).

Thin CLI: each sub-command parses its flags and calls one plain function in evaluation/, zoo/ or datasets/,
so everything here is also reachable from a notebook.
"""
from __future__ import annotations

import inspect

import cli


def subcommand(commands, name: str, handler) -> cli.Parser:
    """Sub-command `name` run by `handler(args)`; its --help text is the handler's docstring: the first line in
    the list of commands, the rest as the description."""
    summary, _, details = inspect.getdoc(handler).partition("\n\n")
    parser = commands.add_parser(name, help=summary, description=" ".join(details.split()) or summary)
    parser.set_defaults(handler=handler)
    return parser


def add_benchmark(commands) -> None:
    import argparse

    from evaluation.benchmark import DEVICES, MODES, PRICES, SCALE_MODES
    from search.gallery import KINDS
    from search.synthetic import GALLERIES

    parser = subcommand(commands, "benchmark", run_benchmark)
    parser.add_argument("--models", type=cli.names,
                        help="comma-separated registered models (default: every one)")
    parser.add_argument("--devices", type=cli.names_from(DEVICES, "device"), default=DEVICES,
                        help="cpu, gpu or both (default); a device not present is reported as absent")
    parser.add_argument("--modes", type=cli.names_from(MODES + SCALE_MODES, "mode"), default=MODES,
                        help=f"what to measure, some of {','.join(MODES + SCALE_MODES)} (default: "
                             f"{','.join(MODES)}); search: FAISS indexes over --sizes synthetic vectors, embed: "
                             "--embed-images embedded in one process against Ray workers")
    parser.add_argument("--sizes", type=cli.sizes, default=(100_000, 1_000_000, 10_000_000),
                        help="search: gallery sizes, comma-separated, k/M allowed (100k,1M,10M)")
    parser.add_argument("--kinds", type=cli.names_from(KINDS, "index kind"), default=("auto",),
                        help=f"search: index kinds, some of {','.join(KINDS)} (auto)")
    parser.add_argument("--gallery", type=cli.names_from(GALLERIES, "gallery"), default=("isotropic",),
                        help="search: synthetic vectors, some of isotropic (clusters in every dimension) and "
                             "encoder (a model of the shipped encoder's vectors) (isotropic)")
    parser.add_argument("--embed-images", type=cli.positive_int, default=20_000,
                        help="embed: images embedded both ways (20000)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64)
    parser.add_argument("--image-size", type=cli.positive_int, default=64, help="square size in px (multiple of 8)")
    parser.add_argument("--steps", type=cli.positive_int, default=50, help="timed steps per measurement")
    parser.add_argument("--warmup", type=cli.positive_int, default=5, help="untimed steps after the compiling one")
    parser.add_argument("--max-seconds", type=cli.positive_float, default=20.0,
                        help="stop a timed loop early after this long (slow models on CPU; default 20)")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                        help="force XLA on or off; default: TensorFlow off on CPU, on with GPU; JAX always on")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 on GPU, mixed_bfloat16 on CPU (default float32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for benchmark.json/.md/.png (with --compare: compare.json)")
    parser.add_argument("--distribute", choices=("mirrored", "data-parallel"),
                        help="measure training under train.py's --distribute on 1, 2, ... devices instead (--replicas; "
                             "default models classifier,stylegan): scaling.json and scaling.md")
    parser.add_argument("--replicas", type=cli.whole_numbers, default=(1, 2),
                        help="device counts for --distribute, comma-separated (default 1,2)")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                        help="compare two benchmark.json files instead of measuring")
    parser.add_argument("--price-a", type=cli.positive_float, default=PRICES["p3.8xlarge"],
                        help="$/hour of A's machine (12.24, p3.8xlarge as in the star-field seed)")
    parser.add_argument("--price-b", type=cli.positive_float, default=PRICES["t3.xlarge"],
                        help="$/hour of B's machine (0.17, t3.xlarge)")
    parser.add_argument("--device-a", choices=DEVICES, default="gpu", help="A's device to compare (gpu)")
    parser.add_argument("--device-b", choices=DEVICES, default="cpu", help="B's device to compare (cpu)")


def run_benchmark(args) -> None:
    """Images/s of every model per device: train, inference, generation, tf.data.

    Measure training, inference and generation throughput per model and device, and the tf.data pipeline; write
    benchmark.json, benchmark.md and benchmark.png. With --compare A.json B.json: A's speed-up over B and the
    cost of 1M images on each."""

    import zoo
    from core.files import writable, write_json
    from evaluation import benchmark

    if args.compare:
        rows = benchmark.compare(benchmark.load_result(args.compare[0]), benchmark.load_result(args.compare[1]),
                                 args.price_a, args.price_b, args.device_a, args.device_b)
        print(benchmark.compare_table(rows, args.device_a, args.device_b))
        if args.out:
            print(f"wrote {write_json(writable(args.out) / 'compare.json', rows)}")
        return
    if not args.out:
        raise cli.UsageError("no --out given. Pass a folder for the results, e.g. --out reports/benchmark")
    scale_modes = tuple(mode for mode in args.modes if mode in benchmark.SCALE_MODES)
    if scale_modes:
        from evaluation.benchmark.search import run_scale

        result = run_scale(scale_modes, args.sizes, args.kinds, args.embed_images, writable(args.out), args.gallery)
        paths = benchmark.write_scale_report(result, args.out)
        print("\n" + benchmark.scale_table(result))
        print("wrote " + " ".join(str(path) for path in paths))
        args.modes = tuple(mode for mode in args.modes if mode not in scale_modes)
        if not args.modes:
            return
    if args.image_size % 8:
        raise cli.UsageError(f"--image-size must be a positive multiple of 8, got {args.image_size}. Use e.g. 64")
    writable(args.out)
    if args.distribute:
        return run_scaling(args)
    config = benchmark.BenchmarkConfig(
        models=args.models or tuple(zoo.list_models()), devices=args.devices, modes=args.modes,
        batch_size=args.batch_size, image_size=args.image_size, steps=args.steps, warmup=args.warmup,
        max_seconds=args.max_seconds, xla=args.xla, mixed_precision=args.mixed_precision, seed=args.seed)
    result = benchmark.run(config)
    paths = benchmark.write_report(result, args.out)
    print("\n" + benchmark.markdown_table(result))
    print("wrote " + " ".join(str(path) for path in paths))


def run_scaling(args) -> None:
    """`benchmark --distribute`: training images/s per device count and the scaling efficiency."""
    from pathlib import Path

    from core.files import write_atomic, write_json
    from evaluation import benchmark
    from evaluation.benchmark.scaling import SCALING_MODELS, measure_scaling, scaling_table

    if any(count < 1 for count in args.replicas):
        raise cli.UsageError(f"--replicas must be positive device counts, got {args.replicas}. Use e.g. 1,2")
    config = benchmark.BenchmarkConfig(models=args.models or SCALING_MODELS, devices=("cpu",), modes=("train",),
                                       batch_size=args.batch_size, image_size=args.image_size, steps=args.steps,
                                       warmup=args.warmup, max_seconds=args.max_seconds, seed=args.seed)
    result = measure_scaling(config, args.distribute, args.replicas)
    table = scaling_table(result)
    print("\n" + table)
    out = Path(args.out)
    written = [write_json(out / "scaling.json", result),
               write_atomic(out / "scaling.md", lambda tmp: Path(tmp).write_text(table + "\n"))]
    print("wrote " + " ".join(str(path) for path in written))


PRESET_HELP = "preset:NAME, a shipped run (train.py --list) whose default outputs go to runs/preset-NAME/"


def add_gallery_flags(parser) -> None:
    """Which images to search: the run's own dataset and preparation unless these say otherwise."""
    parser.add_argument("--run", help=f"run folder written by train.py, or {PRESET_HELP}; omit for --embedding pixels")
    cli.add_dataset_flags(parser, "dataset", "data_dir", "classes", "limit", "image_size", "crop", default=None,
                          dataset_help="gallery dataset (default: the run's, else synthetic-galaxies)",
                          image_size_help="square size in px (only without --run)")
    parser.add_argument("--seed", type=int, help="dataset seed (default: the run's, else 0)")
    parser.add_argument("--embedding", choices=("latent", "scores", "pixels"),
                        help="latent (encode), scores (class probabilities) or pixels (default: what the model has)")


def gallery_overrides(args) -> dict:
    return dict(dataset=args.dataset, data_dir=args.data_dir, classes=args.classes, limit=args.limit,
                image_size=args.image_size, crop=args.crop, seed=args.seed)


def default_out(args, command: str) -> str:
    """--out, else RUN/COMMAND (runs/preset-NAME/COMMAND for a shipped preset, COMMAND-pixels without a run),
    checked to be writable before any work."""
    from pathlib import Path

    from core.files import writable
    from core.runs import RunFolder

    return str(writable(args.out or (RunFolder(args.run).results(command) if args.run else Path(f"{command}-pixels"))))


def add_neighbours(commands) -> None:
    parser = subcommand(commands, "neighbours", run_neighbours)
    parser.add_argument("--query", default="milky-way",
                        help="'milky-way' (built-in rendered face-on SBbc) or a PNG/JPEG file (milky-way)")
    parser.add_argument("--k", type=cli.positive_int, default=10, help="neighbours to return (10)")
    add_gallery_flags(parser)
    parser.add_argument("--index", metavar="FILE|IDX", help="a .npz file of embeddings + FAISS index: built and "
                                                            "saved here once, then reused by later queries; or an "
                                                            "IDX/ folder written by evaluate.py index")
    parser.add_argument("--out", help="folder for neighbours.csv/.png (default RUN/neighbours, else neighbours-pixels)")


def run_neighbours(args) -> None:
    """The galaxies nearest to the Milky Way (or any image) in latent, score or pixel space.

    Find the k dataset images nearest to a query image; write neighbours.csv and neighbours.png."""
    from search.queries import format_table, nearest

    out = default_out(args, "neighbours")
    result = nearest(args.query, args.k, args.run, args.embedding, args.index, out, **gallery_overrides(args))
    print(format_table(result.rows))
    print(f"searched {result.gallery_size:,} images in {1000 * result.seconds['search']:.1f} ms "
          f"(query embedded in {1000 * result.seconds['embed']:.0f} ms); "
          f"wrote {out}/neighbours.csv, {out}/neighbours.png")


def add_serve(commands) -> None:
    parser = subcommand(commands, "serve", run_serve)
    add_gallery_flags(parser)
    parser.add_argument("--index", required=True, metavar="FILE",
                        help="embeddings + FAISS index of the gallery: built and saved here first if missing")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=cli.port_number, default=8000, help="port to listen on (8000; 0: any free one)")
    parser.add_argument("--measure", type=cli.positive_int, metavar="N",
                        help="instead of serving: time N queries of each kind over HTTP, write serve-latency.json")
    parser.add_argument("--out", help="with --measure: folder for serve-latency.json (default RUN/serve)")


def run_serve(args) -> None:
    """A web page and JSON API for the Milky Way search: pick or upload a galaxy, see its neighbours.

    Serve http://HOST:PORT/, a page showing the k nearest gallery galaxies to the rendered Milky Way, an uploaded
    PNG/JPEG or any gallery galaxy (click a neighbour to make it the query), and the JSON API it reads: GET
    /api/neighbours?index=I&k=K (without index: the Milky Way), POST /api/neighbours?k=K with an image as the body,
    GET /api/galaxies/I.png. The gallery's vectors come from --index, built first when the file is missing; only
    the query is embedded. With --measure N: time N queries of each kind and write serve-latency.json."""
    from core.files import write_json
    from search.serve import listen, measure_latency, open_search, serve, url_of

    out = default_out(args, "serve") if args.measure else None
    with listen(args.host, args.port) as sock:
        search = open_search(args.run, args.index, args.embedding, **gallery_overrides(args))
        if out is None:
            print(f"serving {url_of(sock)} ({len(search.gallery):,} galaxies of {search.about['dataset']}, "
                  f"{search.about['embedding']} embedding); Ctrl+C stops it", flush=True)
            serve(search, sock)
            return
        result = measure_latency(search, sock, args.measure)
    for kind, times in result["queries"].items():
        print(f"{kind:>10}: median {times['median_ms']:.1f} ms, 95th percentile {times['p95_ms']:.1f} ms")
    print(f"{args.measure} queries of each kind, k {result['k']}, over {result['gallery_size']:,} galaxies "
          f"({result['dimensions']}-d {result['index']}) on {result['machine']}; wrote {out}/serve-latency.json")
    write_json(f"{out}/serve-latency.json", result)


def add_embed(commands) -> None:
    parser = subcommand(commands, "embed", run_embed)
    add_gallery_flags(parser)
    parser.add_argument("--out", required=True, metavar="EMB", help="folder for the Parquet shards and manifest.json")
    parser.add_argument("--workers", type=cli.positive_int, help="Ray workers, each loading the model once "
                                                                  "(default: one per CPU of the cluster)")
    parser.add_argument("--address", help="Ray cluster to run on, host:port of 'ray start --head' (default: "
                                          "RAY_ADDRESS, else a local Ray on this machine)")


def run_embed(args) -> None:
    """Embed a whole gallery into Parquet shards on a pool of Ray workers.

    Read the dataset in shards of rows, embed each on a Ray worker that loads the model once, and write one Parquet
    file per shard (row, dataset index, label, the dataset's metadata such as ra/dec/redshift or path, the
    embedding) plus manifest.json. Rerunning after an interruption embeds only the missing shards."""
    from search.shards import embed_shards

    manifest = embed_shards(args.out, args.run, args.embedding, args.workers, args.address, **gallery_overrides(args))
    print(f"{manifest['n']:,} images ({manifest['embedding']}) in {manifest['shards']} shards; wrote {args.out}/")


def add_index(commands) -> None:
    import argparse

    from search.gallery import EXACT_LIMIT, KINDS

    parser = subcommand(commands, "index", run_index)
    parser.add_argument("--embeddings", required=True, metavar="EMB", help="folder written by evaluate.py embed")
    parser.add_argument("--out", required=True, metavar="IDX", help="new folder for the index")
    parser.add_argument("--kind", choices=KINDS, default="auto",
                        help="auto (exact up to --exact-limit vectors, ivf-flat up to 2M, else ivf-pq), flat, "
                             "ivf-flat, ivf-pq (4-bit fast-scan codes, re-ranked exactly) or hnsw (in memory)")
    parser.add_argument("--exact-limit", type=cli.positive_int, default=EXACT_LIMIT,
                        help=f"with --kind auto: the largest gallery searched exactly ({EXACT_LIMIT})")
    parser.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=True,
                        help="ivf-pq: re-rank candidates by exact distance from a memory-mapped copy of the vectors "
                             "(default on)")
    parser.add_argument("--address", help="Ray cluster for the IVF shard tasks (default: RAY_ADDRESS, else local)")


def run_index(args) -> None:
    """Build a FAISS index folder over embed's shards: exact, or IVF.

    Exact below --exact-limit vectors; above it an IVF index trained on a sample, each group of shards added by a
    Ray task and the parts merged: ivf-flat's lists into one file on disk, memory-mapped by queries; ivf-pq's
    4-bit fast-scan codes in memory, re-ranked exactly from a memory-mapped copy of the vectors, with the nprobe
    that reaches its recall target on held-out gallery vectors. Query it with 'evaluate.py neighbours --index
    IDX'."""
    from search.index import build_sharded_index

    info = build_sharded_index(args.embeddings, args.out, args.kind, args.exact_limit, args.rerank, args.address)
    chosen = ", ".join(f"{key} {info[key]}" for key in ("nlist", "nprobe", "pq", "rerank", "held_out_recall")
                       if key in info)
    print(f"{info['kind']} index of {info['n']:,} vectors ({chosen or 'exact'}) in {info['build_seconds']:.1f} s, "
          f"{info['bytes_on_disk'] / 2**20:,.1f} MB; wrote {args.out}/")


def add_retrieval(commands) -> None:
    parser = subcommand(commands, "retrieval", run_retrieval)
    parser.add_argument("--k", type=cli.positive_int, default=10, help="neighbours per query (10)")
    add_gallery_flags(parser)
    parser.add_argument("--out", help="folder for retrieval.json/.png (default RUN/retrieval)")


def run_retrieval(args) -> None:
    """Precision@k of same-class neighbours: the run's embedding against pixels.

    Query every held-out validation image against the training images; precision@k of the run's embedding and of
    the pixel-MSE baseline; write retrieval.json and retrieval.png."""
    from evaluation.retrieval import evaluate_retrieval, format_results

    if not args.run:
        raise cli.UsageError("retrieval needs --run. Pass a run folder of autoencoder, vae, simclr or classifier")
    out = default_out(args, "retrieval")
    results = evaluate_retrieval(args.run, args.k, args.embedding, out, **gallery_overrides(args))
    print(format_results(results))
    print(f"{results['n_queries']} held-out queries, {results['n_gallery']} gallery images; "
          f"wrote {out}/retrieval.json, {out}/retrieval.png")


def add_label_efficiency(commands) -> None:
    parser = subcommand(commands, "label-efficiency", run_label_efficiency)
    parser.add_argument("--from", dest="from_run", required=True, metavar="RUN_OR_PRESET",
                        help="a simclr, vae or autoencoder run folder, or preset:NAME, whose encoder is measured")
    parser.add_argument("--labels", default="5,10,25,100,all",
                        help="labeled images per class, comma-separated, 'all' for the whole training split "
                             "(5,10,25,100,all)")
    parser.add_argument("--repeats", type=cli.positive_int, default=3,
                        help="draws of the labeled images (seeds 0, 1, ...) per number of labels (3)")
    cli.add_dataset_flags(parser, "dataset", "data_dir", "limit", dataset_help="a labeled dataset (synthetic-galaxies)")
    parser.add_argument("--epochs", type=cli.positive_int, default=6, help="epochs of every network (6)")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, default=25,
                        help="batches per epoch, the same for every number of labels (25)")
    parser.add_argument("--freeze-epochs", type=int, default=2, help="fine-tune: epochs with the encoder frozen (2)")
    parser.add_argument("--out", required=True, help="folder for label-efficiency.json and label-efficiency.png")


def run_label_efficiency(args) -> None:
    """Validation accuracy against labels per class: from scratch, linear probe, fine-tuned.

    For each number of labeled images per class and each repeat, train the zoo's classifier from scratch, fit a
    logistic regression on the frozen encoder's features and fine-tune the encoder with a classifier head, all on
    the same images and with the same number of optimizer steps; write label-efficiency.json and
    label-efficiency.png and print the table."""
    from evaluation.label_efficiency import Budget, format_results, label_efficiency, parse_labels

    budget = Budget(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, freeze_epochs=args.freeze_epochs)
    results = label_efficiency(args.from_run, parse_labels(args.labels), args.repeats, args.out, args.dataset,
                               args.data_dir, args.limit, budget)
    print(format_results(results))
    print(f"{results['n_validation']} validation images, {results['seconds']:.0f} s; "
          f"wrote {args.out}/label-efficiency.json, {args.out}/label-efficiency.png")


def add_robustness(commands) -> None:
    parser = subcommand(commands, "robustness", run_robustness)
    parser.add_argument("--run", required=True, help="run folder of a classifier or an encoder")
    parser.add_argument("--n", type=cli.positive_int, default=500, help="validation galaxies per condition (500)")
    parser.add_argument("--k", type=cli.positive_int, default=10, help="neighbours for precision@k (10)")
    parser.add_argument("--out", help="folder for robustness.json/.png (default RUN/robustness)")


def run_robustness(args) -> None:
    """Accuracy and precision@k under observing conditions held out of training, and the Hubble domain gap.

    Render the run's validation galaxies again under each held-out condition (two other stretches, worse seeing,
    more noise, a crowded star field, a larger galaxy, a colour cast, heavy JPEG); measure the classifier's accuracy and
    the embedding's leave-one-out precision@k beside the clean set, and how far the Hubble Deep Field stamps sit
    from the synthetic galaxies in the embedding; write robustness.json and robustness.png."""
    from evaluation.robustness import format_results, measure_robustness

    out = default_out(args, "robustness")
    results = measure_robustness(args.run, args.n, args.k, out)
    print(format_results(results))
    print(f"{results['n']} validation galaxies per condition; wrote {out}/robustness.json, {out}/robustness.png")


def add_reconstruct(commands) -> None:
    parser = subcommand(commands, "reconstruct", run_reconstruct)
    parser.add_argument("--run", required=True,
                        help=f"run folder of a model that reconstructs (autoencoder, vae), or {PRESET_HELP}")
    parser.add_argument("--judge", metavar="RUN",
                        help="a trained classifier run (e.g. preset:galaxy-classifier) that names each image's class")
    parser.add_argument("--seed", type=int, default=0, help="with --judge: sampling seed of the judged generated "
                                                            "images, for models that generate (0)")
    parser.add_argument("--out", help="folder for reconstruct.json/.png (default RUN/reconstruct)")


def run_reconstruct(args) -> None:
    """How well an autoencoder or VAE keeps shape and class: MSE, SSIM, the judge's class kept.

    Reconstruct the run's held-out validation images and the rendered Milky Way; write reconstruct.json (pixel
    MSE, SSIM and, with --judge, the share of reconstructions whose class the judge keeps) and reconstruct.png
    (originals above reconstructions)."""
    from evaluation.reconstruct import evaluate_reconstruction, format_results

    out = default_out(args, "reconstruct")
    result = evaluate_reconstruction(args.run, args.judge, out, seed=args.seed)
    print(format_results(result))
    print(f"{result['n']} held-out images; wrote {out}/reconstruct.json, {out}/reconstruct.png")


def add_generate(commands) -> None:
    parser = subcommand(commands, "generate", run_generate)
    parser.add_argument("--run", required=True, help=f"run folder written by train.py, or {PRESET_HELP}")
    parser.add_argument("--n", type=cli.positive_int, default=16, help="images to write (16)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same images (0)")
    parser.add_argument("--near", metavar="QUERY", help="'milky-way' or a PNG/JPEG file: models that encode and decode")
    parser.add_argument("--noise", type=float,
                        help="with --near: noise in units of the dataset's latent spread per component (0.5)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=16, help="images made at once (16)")
    parser.add_argument("--out", help="folder for the images (default RUN/generated)")


def run_generate(args) -> None:
    """Sample images from a generative run, or Milky-Way-like images with --near.

    Write n images (PNG, grayscale for one-channel models), grid.png and generation.json. Without --near:
    samples from the model's prior. With --near: decodes noisy copies of the query's latent vector and reports
    the query's own reconstruction MSE."""
    from evaluation.generation import generate_images

    out = default_out(args, "generated")
    summary = generate_images(args.run, out, args.n, args.seed, args.near, args.noise, args.batch_size)
    shape = "×".join(map(str, summary["image_shape"]))
    print(f"{summary['n']} images of {shape} from {summary['model']} at {summary['images_per_second']:.1f} images/s "
          f"(generate {summary['seconds']['generate']:.2f} s, write {summary['seconds']['write']:.2f} s)")
    if "reconstruction_mse" in summary:
        error = summary["reconstruction_mse"]
        print(f"reconstruction MSE: {args.near} {error['query']:.5f}, {error['dataset_images']} dataset images "
              f"{error['dataset_mean']:.5f} (mean) {error['dataset_median']:.5f} (median)")
    print(f"wrote {out}/ (image_*.png, grid.png, generation.json)")


def add_score(commands) -> None:
    parser = subcommand(commands, "score", run_score)
    parser.add_argument("--run", action="append", default=[], help="a generative run folder (repeat to compare)")
    parser.add_argument("--generated", action="append", default=[], metavar="DIR",
                        help="a folder of generated PNGs, e.g. from 'evaluate.py generate' (repeat to compare)")
    parser.add_argument("--n", type=cli.positive_int, default=500, help="images per set, and real images (500)")
    parser.add_argument("--real", default="star-fields", metavar="DATASET",
                        help="the real images: a dataset of 'train.py --list' (star-fields)")
    parser.add_argument("--data-dir", help="file or folder the real dataset reads (cil: the CIL folder)")
    parser.add_argument("--scorer", metavar="RUN", help="a trained rf-scorer or cnn-scorer run: the learned score")
    parser.add_argument("--features", metavar="RUN",
                        help="a trained run whose encode (else classify) gives the features of FID, KID, "
                             "precision and recall (cnn-scorer for star fields, classifier for galaxies)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read a scorer run of an older version, whose forest is a pickle (which can run "
                             "code): only for runs you trust")
    parser.add_argument("--adversarial", type=cli.positive_int, metavar="N",
                        help="also score N fields made from the real ones with their histogram and power spectrum "
                             "but hard-edged stars, and report the score gap to the real fields (needs --scorer)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the runs and the real dataset's (0)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=16,
                        help="images made and measured at once; the same as generate's gives its images (16)")
    parser.add_argument("--out", required=True, help="folder for score.json and score.png")


def run_score(args) -> None:
    """Score generated sets against real images: learned score, distribution distances, collapse.

    Compare generated image sets with real images; write score.json and score.png. Several --run / --generated
    give one comparison table, best first."""
    from core.files import writable
    from evaluation.score import format_table, score_sets

    report, _ = score_sets(writable(args.out), runs=args.run, generated=args.generated, real=args.real,
                           data_dir=args.data_dir, n=args.n, scorer=args.scorer, features=args.features,
                           seed=args.seed, batch_size=args.batch_size, trust_pickle=args.trust_pickle,
                           adversarial=args.adversarial)
    print(format_table(report))
    print(f"ranked by {report['ranked_by']}; wrote {args.out}/score.json, {args.out}/score.png")


def add_paper(commands) -> None:
    parser = subcommand(commands, "paper", run_paper)
    parser.add_argument("--out", default="reports/paper", help="output folder (reports/paper)")
    parser.add_argument("--runs", default="runs/paper", help="folder of the trained runs, replaced (runs/paper)")
    parser.add_argument("--n", type=cli.positive_int, default=500, help="generated fields per model (500)")
    parser.add_argument("--seed", type=int, default=0, help="training and sampling seed (0)")


def run_paper(args) -> None:
    """The star-field seed's Fig. 1, Fig. 4 and Table I on this machine (make paper).

    Train naive, layered, a short StyleGAN and both scorers on the built-in star fields, score the generated
    fields, and write figure1.png, figure4.png, table1.md and results.json."""
    from core.files import writable
    from evaluation.paper import PaperConfig, make_paper

    make_paper(writable(args.out), PaperConfig(n=args.n, seed=args.seed), writable(args.runs, "--runs"))


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="evaluate.py", description="Evaluate astrozoo models and write results.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cli.Parser)
    for add_command in (add_benchmark, add_neighbours, add_serve, add_embed, add_index, add_retrieval,
                        add_label_efficiency, add_robustness, add_reconstruct, add_generate, add_score, add_paper):
        add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    cli.run(main)
