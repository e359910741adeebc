"""`make paper`: the star-field write-up's results (docs/background.md: Fig. 1, Fig. 4, Table I, the scorers'
MAE) reproduced on this machine in one command, `python evaluate.py paper --out reports/paper`.

It trains naive, layered and a short StyleGAN on the built-in star fields, the random-forest and the CNN scorer
on the built-in scored fields, scores `n` generated fields per model and `adversarial` attack fields with both
judges (evaluation/score.py, FID / KID on the CNN scorer's features), and writes to the output folder:

    figure1.png    average score per model with its min-max range, forest and CNN, beside the seed's (Fig. 1)
    figure4.png    average pixel histogram of each model's fields and of the real ones (Fig. 4)
    table1.md      training time here beside the seed's Table I hours and dollars, at the seed's prices
    orderings.md   both judges and the distribution metrics side by side, and which of the seed's orderings
                   hold by each, with the numbers
    results.json   everything above as numbers
    score/, score_cnn/   score.json and score.png of the comparison by the forest, and by the CNN scorer

and the five trained runs to runs/paper/ (replaced each time; runs/ is not committed).

StyleGAN's schedule is cut to fit a CPU: 256 px tiles at half resolution (128 px), grown from
`stylegan_start_size` with `stylegan_images_per_stage` real tiles per resolution, so it sees about 2,000 tiles
where the seed trained 1.93 hours on four V100s. A StyleGAN field is stitched from 16 generated tiles (500 px)
and enlarged to 1000 px, as the seed made its 1000 px images from a model trained on 256 px tiles.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.files import save_figure, write_atomic, write_json
from core.runs import TrainConfig
from core.tables import markdown_table
from evaluation.score import MIN_IMAGES, average_histogram, format_table, score_sets
from training import train

MODELS = ("naive", "stylegan", "layered")          # the seed's order in Fig. 1 and Fig. 4
LABELS = {"naive": "naive", "stylegan": "StyleGAN", "layered": "layered", "real": "real"}
SEED_SCORES = {"naive": {"mean": 0.27}, "stylegan": {"mean": 1.23}, "layered": {"mean": 2.00, "min": 0.35, "max": 4.13}}
SEED_MAE = {"rf-scorer": 0.116, "cnn-scorer": 0.63}
SEED_TRAINING = {          # Table I: hardware, USD per hour, hours, total USD
    "stylegan": ("p3.8xlarge (4× V100)", 12.24, 1.93, 23.623),
    "naive": ("t3.xlarge (4 cores)", 0.17, 0.006, 0.001),
    "layered": ("t3.xlarge (4 cores)", 0.17, 0.228, 0.038),
}
CPU_PRICE = ("t3.xlarge", 0.17)      # this machine's runs are priced as the seed's CPU instance


@dataclass
class PaperConfig:
    """What `make paper` trains and scores; the defaults finish in about a quarter of an hour on 2 CPU cores."""

    n: int = 500                         # generated fields per model, and real fields
    fields: int = 1000                   # star fields naive and layered learn from (90% train)
    scored_fields: int = 1000            # scored fields the scorers learn from (90% train)
    cnn_epochs: int = 10
    layered_epochs: int = 10             # × the star WGAN's 30 steps per epoch
    layered_coordinate_epochs: int = 60
    stylegan_fields: int = 200           # 3,200 tiles of 256 px
    stylegan_tile: int = 256
    stylegan_image_size: int = 128       # the tiles at half resolution: a quarter of the cost to train and sample
    stylegan_start_size: int = 8
    stylegan_images_per_stage: int = 256
    stylegan_batch_size: int = 16
    stylegan_steps_per_epoch: int = 32
    stylegan_epochs: int = 4             # 4 × 32 × 16 = 2,048 tiles: 8 → 128 px, 896 of them at 128 px
    stylegan_validation_fraction: float = 0.025   # 5 fields: Keras validates on all of them every epoch
    adversarial: int = 100               # attack fields scored beside the real ones
    seed: int = 0


def training_configs(config: PaperConfig) -> dict:
    common = dict(dataset="star-fields", seed=config.seed)
    return {
        "naive": TrainConfig(model="naive", limit=config.fields, **common),
        "layered": TrainConfig(model="layered", limit=config.fields, epochs=config.layered_epochs,
                               options={"coordinate_epochs": config.layered_coordinate_epochs}, **common),
        "stylegan": TrainConfig(
            model="stylegan", limit=config.stylegan_fields, tile=config.stylegan_tile,
            image_size=config.stylegan_image_size, epochs=config.stylegan_epochs,
            steps_per_epoch=config.stylegan_steps_per_epoch, batch_size=config.stylegan_batch_size,
            validation_fraction=config.stylegan_validation_fraction,
            options={"start_size": config.stylegan_start_size, "images_per_stage": config.stylegan_images_per_stage},
            **common),
        "rf-scorer": TrainConfig(model="rf-scorer", limit=config.scored_fields, **common),
        "cnn-scorer": TrainConfig(model="cnn-scorer", limit=config.scored_fields, epochs=config.cnn_epochs, **common),
    }


def train_runs(config: PaperConfig, runs_dir: Path, log=print) -> dict[str, dict]:
    """Trains every run into runs_dir/<model> (replacing an earlier one); wall and CPU seconds, final metrics."""
    trained = {}
    for name, train_config in training_configs(config).items():
        run_dir = runs_dir / name
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"training {name} ...")
        wall, cpu = time.perf_counter(), time.process_time()
        _, final = train(train_config, run_dir=run_dir, verbose=0)
        trained[name] = {"run": str(run_dir), "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                         "final": final}
        log(f"  {name}: {trained[name]['wall_s']:.0f} s wall, {trained[name]['cpu_s']:.0f} s CPU "
            + " ".join(f"{k}={v:.3g}" for k, v in final.items() if k.startswith("val_")))
    return trained


def orderings(scores: dict[str, float]) -> dict:
    """The seed's ranking (layered > StyleGAN > naive) pair by pair, and whether the whole ranking holds here."""
    seed_order = sorted(SEED_SCORES, key=lambda m: -SEED_SCORES[m]["mean"])
    pairs = {f"{a} > {b}": scores[a] > scores[b]
             for i, a in enumerate(seed_order) for b in seed_order[i + 1:]}
    return {"seed": seed_order, "here": sorted(scores, key=lambda m: -scores[m]), "pairs": pairs,
            "all_match": all(pairs.values())}


def figure1(reports: dict[str, dict]):
    """Average score per model with min-max by each judge (forest, CNN), next to the seed's forest (Fig. 1), with
    the real and the adversarial fields as lines."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.4, 4.4))
    positions = np.arange(len(MODELS))
    width = 0.8 / (len(reports) + 1)
    for k, (judge, report) in enumerate(reports.items()):
        sets = {s["name"]: s["scorer"] for s in report["sets"]}
        here = [sets[m] for m in MODELS]
        axis.bar(positions + (k - len(reports) / 2) * width, [s["mean"] for s in here], width, color=f"C{k}",
                 label=f"{judge} here ({report['sets'][0]['n']} fields each)", capsize=3,
                 yerr=[[s["mean"] - s["min"] for s in here], [s["max"] - s["mean"] for s in here]])
        real = report["real"]["scorer"]["mean"]
        axis.axhline(real, color=f"C{k}", linestyle="--", linewidth=1, label=f"real fields, {judge} ({real:.2f})")
        if report["adversarial"]:
            attack = report["adversarial"]["scorer"]["mean"]
            axis.axhline(attack, color=f"C{k}", linestyle=":", linewidth=1,
                         label=f"adversarial fields, {judge} ({attack:.2f})")
    seed = [SEED_SCORES[m] for m in MODELS]
    axis.bar(positions + len(reports) / 2 * width, [s["mean"] for s in seed], width, label="seed's forest (500 images)",
             color="0.75", hatch="//", yerr=[[s["mean"] - s.get("min", s["mean"]) for s in seed],
                                             [s.get("max", s["mean"]) - s["mean"] for s in seed]], capsize=3)
    axis.set_xticks(positions, [LABELS[m] for m in MODELS])
    axis.set(ylabel="score (0-8), mean and min-max", ylim=(0, 8.3),
             title="Average score of generated star fields (seed Fig. 1)")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    figure.tight_layout()
    return figure


DISTANCES = ("histogram_w1", "power_spectrum_distance", "fid_domain")     # lower is better


def judge_tables(reports: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per judge (each scorer's mean, and each distance as its negative, so higher is better everywhere) the
    value of each model."""
    first = next(iter(reports.values()))
    tables = {judge: {s["name"]: s["scorer"]["mean"] for s in report["sets"]} for judge, report in reports.items()}
    for key in DISTANCES:
        tables[key] = {s["name"]: -s[key] for s in first["sets"] if s[key] is not None}
    return tables


def agreement(tables: dict[str, dict[str, float]]) -> dict[str, dict]:
    """For each of the seed's pairs, what every judge says (holds or not) and whether they all agree."""
    verdicts = {judge: orderings(values)["pairs"] for judge, values in tables.items()
                if set(values) >= set(SEED_SCORES)}
    pairs = next(iter(verdicts.values()))
    return {pair: {"by": {judge: verdict[pair] for judge, verdict in verdicts.items()},
                   "all_agree": len({verdict[pair] for verdict in verdicts.values()}) == 1} for pair in pairs}


def orderings_markdown(reports: dict[str, dict], found: dict[str, dict]) -> str:
    """orderings.md: both judges and the distance metrics side by side per model, the real and the adversarial
    fields, then each of the seed's orderings with what every judge says, and the numbers where they differ."""
    first = next(iter(reports.values()))
    by_judge = {judge: {s["name"]: s for s in report["sets"]} for judge, report in reports.items()}
    lines = ["| fields | " + " | ".join(f"{judge} score" for judge in reports) + " | histogram W1 | spectrum distance "
             "| domain FID |", "|---|" + "---:|" * (len(reports) + 3)]
    for name in MODELS:
        distances = by_judge[next(iter(reports))][name]
        lines.append(f"| {LABELS[name]} | " + " | ".join(f"{by_judge[j][name]['scorer']['mean']:.2f}" for j in reports)
                     + " | " + " | ".join("-" if distances[key] is None else f"{distances[key]:.4g}"
                                          for key in DISTANCES) + " |")
    lines.append("| real | " + " | ".join(f"{r['real']['scorer']['mean']:.2f}" for r in reports.values())
                 + " | 0 | 0 | 0 |")
    if first["adversarial"]:
        attack = first["adversarial"]
        lines.append("| adversarial | " + " | ".join(f"{r['adversarial']['scorer']['mean']:.2f} (gap "
                                                     f"{r['adversarial']['gap']:.2f})" for r in reports.values())
                     + " | " + " | ".join("-" if attack[key] is None else f"{attack[key]:.4g}" for key in DISTANCES)
                     + " |")
    lines += ["", "Which of the seed's orderings (layered > StyleGAN > naive) hold, by each judge (the distances: "
              "lower is better):", ""]
    tables = judge_tables(reports)
    for pair, verdict in found.items():
        said = ", ".join(f"{judge} {'yes' if holds else 'no'}" for judge, holds in verdict["by"].items())
        better, worse = pair.split(" > ")
        lines.append(f"- **{pair}**: {said}." + ("" if verdict["all_agree"] else " They differ: " + "; ".join(
            f"{judge} {abs(values[better]):.4g} against {abs(values[worse]):.4g}" for judge, values in tables.items()
            if better in values and worse in values) + "."))
    return "\n".join(lines) + "\n"


def figure4(summaries: list) -> object:
    """Average pixel histogram of each model's fields and of the real ones, one panel each (Fig. 4)."""
    import matplotlib.pyplot as plt

    by_name = {s.name: s for s in summaries}
    figure, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
    for axis, letter, name in zip(axes, "abcd", [*MODELS, "real"]):
        summary = by_name[name]
        axis.bar(np.arange(256), average_histogram(summary), width=1.0, color="0.25")
        axis.set(yscale="log", ylim=(1e-8, 1), xlim=(-2, 257), xlabel="grey level",
                 title=f"({letter}) {LABELS[name]}, {summary.n} fields")
    axes[0].set_ylabel("share of pixels")
    figure.suptitle("Average histogram of the generated and real fields (seed Fig. 4)")
    figure.tight_layout()
    return figure


def table1(trained: dict[str, dict], config: PaperConfig) -> str:
    """Markdown: the seed's Table I beside this machine's training time, priced at the seed's CPU instance."""
    stylegan_images = config.stylegan_epochs * config.stylegan_steps_per_epoch * config.stylegan_batch_size
    what = {"naive": f"{config.fields} fields (90% train)", "layered": f"{config.fields} fields (90% train)",
            "stylegan": f"short schedule: {stylegan_images:,} tiles of {config.stylegan_tile} px at "
                        f"{config.stylegan_image_size} px, grown from {config.stylegan_start_size} px"}
    header = ("model", "seed hardware", "seed USD/h", "seed hours", "seed USD", "here: trained on", "here: wall",
              "here: CPU", f"here: USD at {CPU_PRICE[0]} {CPU_PRICE[1]}/h")
    rows = []
    for name in MODELS:
        hardware, price, hours, cost = SEED_TRAINING[name]
        wall, cpu = trained[name]["wall_s"], trained[name]["cpu_s"]
        rows.append((LABELS[name], hardware, str(price), str(hours), str(cost), what[name],
                     f"{wall:.0f} s ({wall / 3600:.3f} h)", f"{cpu:.0f} s", f"{wall / 3600 * CPU_PRICE[1]:.4f}"))
    for name in ("rf-scorer", "cnn-scorer"):
        wall, cpu = trained[name]["wall_s"], trained[name]["cpu_s"]
        rows.append((name, "", "", "", "", f"{config.scored_fields} scored fields (90% train)", f"{wall:.0f} s",
                     f"{cpu:.0f} s", f"{wall / 3600 * CPU_PRICE[1]:.4f}"))
    return markdown_table(header, rows, "<<>>><>>>") + "\n"


def make_paper(out_dir: str | Path = "reports/paper", config: PaperConfig = PaperConfig(),
               runs_dir: str | Path = "runs/paper", log=print) -> dict:
    """Trains into runs_dir, scores, and writes figure1.png, figure4.png, table1.md, results.json and score/ to
    out_dir."""
    if config.n < MIN_IMAGES:
        raise DataError(f"--n must be at least {MIN_IMAGES} fields per model, got {config.n}. Use e.g. --n 500")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    trained = train_runs(config, Path(runs_dir), log)
    log(f"scoring {config.n} fields per model and {config.adversarial} adversarial fields, by both judges ...")
    scoring_started = time.perf_counter()
    reports, summaries = {}, {}
    for judge, folder in (("rf-scorer", "score"), ("cnn-scorer", "score_cnn")):
        reports[judge], summaries[judge] = score_sets(out_dir / folder, runs=[trained[m]["run"] for m in MODELS],
                                                      real="star-fields", n=config.n,
                                                      scorer=trained[judge]["run"],
                                                      features=trained["cnn-scorer"]["run"], seed=config.seed,
                                                      adversarial=config.adversarial)
    report = reports["rf-scorer"]
    scoring_s = time.perf_counter() - scoring_started
    found = agreement(judge_tables(reports))
    save_figure(out_dir / "figure1.png", figure1(reports))
    save_figure(out_dir / "figure4.png", figure4(summaries["rf-scorer"]))
    write_atomic(out_dir / "table1.md", lambda tmp: Path(tmp).write_text(table1(trained, config)))
    write_atomic(out_dir / "orderings.md", lambda tmp: Path(tmp).write_text(orderings_markdown(reports, found)))
    means = {s["name"]: s["scorer"]["mean"] for s in report["sets"]}
    results = {
        "config": dataclasses.asdict(config),
        "scores": {s["name"]: s["scorer"] for s in report["sets"]} | {"real": report["real"]["scorer"]},
        "cnn_scores": ({s["name"]: s["scorer"] for s in reports["cnn-scorer"]["sets"]}
                       | {"real": reports["cnn-scorer"]["real"]["scorer"]}),
        "adversarial": {judge: {"scorer": r["adversarial"]["scorer"], "gap": r["adversarial"]["gap"]}
                        for judge, r in reports.items()},
        "seed_scores": SEED_SCORES,
        "orderings": orderings(means),
        "agreement": found,
        "mae": {name: {"here": trained[name]["final"]["val_mae"],
                       "predicting_the_mean": trained[name]["final"]["val_mae_of_mean"], "seed": SEED_MAE[name]}
                for name in SEED_MAE},
        "distances": {s["name"]: {key: s[key] for key in ("histogram_w1", "power_spectrum_distance", "fid_domain",
                                                          "kid_domain", "precision", "recall")}
                      for s in report["sets"]},
        "collapse": {s["name"]: s["collapse"]["collapsed"] for s in report["sets"]},
        "source_count": ({s["name"]: s["source_count"] for s in report["sets"]}
                         | {"real": report["real"]["source_count"]}),
        "training": {name: {k: v for k, v in run.items() if k != "final"} for name, run in trained.items()},
        "seed_training": {name: dict(zip(("hardware", "usd_per_hour", "hours", "usd"), row))
                          for name, row in SEED_TRAINING.items()},
        "scoring_s": scoring_s,
        "total_s": time.perf_counter() - started,
    }
    write_json(out_dir / "results.json", results)
    for judged in reports.values():
        log(format_table(judged))
    log(json.dumps({"orderings": results["orderings"], "mae": results["mae"]}, indent=1))
    log(orderings_markdown(reports, found))
    log(f"wrote {out_dir}/figure1.png, figure4.png, table1.md, orderings.md, results.json, score/, score_cnn/ in "
        f"{results['total_s']:.0f} s")
    return results
