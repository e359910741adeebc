"""Train a zoo model: `python train.py --model vae` (synthetic galaxies, sensible defaults).

Thin CLI: flags → training.TrainConfig → training.train, which writes the run folder.
"""
from __future__ import annotations

import cli
from core.runs import STRATEGIES


def model_flags(args) -> dict:
    """The --option pairs, plus the StyleGAN schedule flags that were given."""
    schedule = {"start_size": args.start_size, "images_per_stage": args.images_per_stage}
    return {**dict(args.option), **{key: value for key, value in schedule.items() if value is not None}}


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="train.py", description="Train an astrozoo model and write a run folder.")
    parser.add_argument("--list", action="store_true",
                        help="list models (capabilities, parameters), datasets and the shipped presets")
    parser.add_argument("--model", help="registered model name (see --list)")
    cli.add_dataset_flags(parser, image_size_help="square size in px (default: 64 for galaxy models, 1000 for star "
                                                  "fields, the --tile size)")
    parser.add_argument("--epochs", type=cli.positive_int,
                        help="default: the model's own, else 10; with --resume: train on to this many")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, help="batches per epoch (default: one pass)")
    parser.add_argument("--batch-size", type=cli.positive_int, help="default: the model's own, else 32")
    parser.add_argument("--learning-rate", type=cli.positive_float, help="default: the model's own")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="turn off random flips and 90° rotations")
    parser.add_argument("--option", action="append", type=cli.key_value, default=[], metavar="KEY=VALUE",
                        help="a model option, e.g. --option preset=wide --option latent_dim=32")
    tune = parser.add_argument_group("fine-tuning a pretrained encoder (training/finetune.py)")
    tune.add_argument("--from", dest="from_run", metavar="RUN_OR_PRESET",
                      help="with --model classifier: a classifier head on the encoder of this simclr, vae or "
                           "autoencoder run (or preset:NAME), the encoder frozen first, then trained at 1/10 "
                           "of the learning rate")
    tune.add_argument("--freeze-epochs", type=int, help="with --from: epochs with the encoder frozen (half)")
    tune.add_argument("--labels-per-class", type=cli.positive_int, metavar="K",
                      help="train on K labeled images per class, drawn (by --seed) from the training split")
    parser.add_argument("--start-size", type=cli.positive_int, help="stylegan: the resolution growing starts at (4)")
    parser.add_argument("--images-per-stage", type=cli.positive_int,
                        help="stylegan: real images per resolution, the first half fading the new one in (8000)")
    parser.add_argument("--seed", type=int, default=0, help="drives data, shuffling, initialisation and sampling")
    parser.add_argument("--out", help="run folder (default runs/<model>-<timestamp>)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a run from its last finished epoch (not a preset: they are read-only)")
    spread = parser.add_argument_group("training on several devices and processes (training/distribute.py)")
    spread.add_argument("--distribute", default="none", choices=STRATEGIES,
                        help="mirrored: tf.distribute.MirroredStrategy over the local GPUs (TensorFlow); "
                             "data-parallel: keras.distribution.DataParallel over every device (JAX). "
                             "--batch-size is the global batch")
    spread.add_argument("--devices", type=cli.positive_int,
                        help="replicas: the first N GPUs, or N logical CPUs where there is no GPU")
    spread.add_argument("--coordinator", metavar="HOST:PORT", help="data-parallel: process 0's address")
    spread.add_argument("--num-processes", type=cli.positive_int, help="data-parallel: processes in all")
    spread.add_argument("--process-id", type=int, help="data-parallel: this process, from 0 (0 writes the run)")
    return parser


def print_catalogue() -> None:
    import datasets
    import zoo
    from core.runs import PRESET, list_presets, load_config, presets_dir
    from core.tables import text_table

    models = []
    for name in zoo.list_models():
        entry = zoo.get_entry(name)
        model = zoo.create(name)
        count = f"{model.count_params():,}" if hasattr(model, "count_params") else "-"
        models.append((name, entry.world, count, ", ".join(entry.capabilities), entry.description))
    print(text_table(("model", "world", "parameters", "capabilities", "description"), models, "<<>"))
    print("\n" + text_table(("dataset", "description"), list(datasets.list_datasets().items())))
    presets = []
    for name in list_presets():
        config = load_config(PRESET + name)
        presets.append((name, config.model, config.dataset, ", ".join(zoo.get_entry(config.model).capabilities)))
    print("\n" + text_table(("preset (--run preset:NAME)", "model", "dataset", "capabilities"), presets))
    if not presets:
        print(f"none shipped in {presets_dir()}")


PER_PROCESS = ("coordinator", "num_processes", "process_id")     # how this process joins, not a run setting


def settings_given_with_resume(parser: cli.Parser, args) -> list[str]:
    """The flags given beside --resume other than --epochs and the joining ones: a resumed run keeps its own
    settings."""
    return [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
            if name not in ("resume", "epochs", *PER_PROCESS) and value != parser.get_default(name)]


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        return print_catalogue()
    from core.runs import TrainConfig, load_config
    from training import train

    if args.resume:
        if given := settings_given_with_resume(parser, args):
            raise cli.UsageError(f"--resume continues a run with the settings it was trained with, so "
                                 f"{', '.join(given)} cannot change. Drop them (only --epochs applies with --resume)")
        config = load_config(args.resume)
        config.epochs = args.epochs or config.epochs
        run_dir, final = train(config, run_dir=args.resume, resume=True, distribution=joined(config, args))
    else:
        if not args.model:
            raise cli.UsageError("no --model given. Pick one from 'python train.py --list', e.g. --model vae")
        config = TrainConfig(model=args.model, dataset=args.dataset, data_dir=args.data_dir, classes=args.classes,
                             limit=args.limit, image_size=args.image_size, crop=args.crop, tile=args.tile,
                             epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, validation_fraction=args.validation_fraction,
                             augment=args.augment, seed=args.seed, options=model_flags(args),
                             distribute=args.distribute, devices=args.devices, from_run=args.from_run,
                             freeze_epochs=args.freeze_epochs, labels_per_class=args.labels_per_class)
        run_dir, final = train(config, run_dir=args.out, distribution=joined(config, args))
    metrics = "  ".join(f"{k}={v:.4g}" for k, v in sorted(final.items()) if k.startswith("val_"))
    print(f"done: {run_dir}  {metrics}")


def joined(config, args):
    """The run's distribution, with this process joined to the others when the flags say so."""
    from training.distribute import start

    return start(config.distribute, config.devices, args.coordinator, args.num_processes, args.process_id)


if __name__ == "__main__":
    cli.run(main)
