"""benchmark.json, benchmark.md and benchmark.png from a finished run."""
from __future__ import annotations

from pathlib import Path

from core.files import save_figure, write_atomic, write_json
from core import tables


def cell(result: dict | None) -> str:
    if result is None:
        return "-"
    if result["status"] != "ok":
        return result["status"]
    return f"{result['images_per_s']:,.1f} ({result['ms_per_step']:,.1f} ms)"


def notes(results: list[dict]) -> str:
    found = []
    for result in results:
        device = result["device"]
        if result["status"] in ("skipped", "failed"):
            found.append(f"{device}: {result['reason']}")
        if result.get("compile_s") is not None:
            found.append(f"{device} compile {result['compile_s']:.1f} s")
        if result.get("percent_of_peak") is not None:
            found.append(f"{device} {result['achieved_gflops']:.1f} GFLOP/s = {result['percent_of_peak']:.0f}% "
                         "of matmul peak")
        if result.get("overhead_percent") is not None:
            found.append(f"{device} tf.data overhead {result['overhead_percent']:+.0f}% "
                         f"(CPU time {result['cpu_overhead_percent']:+.0f}%)")
        if result.get("stopped_early"):
            found.append(f"{device} stopped by --max-seconds after {result['steps']} step"
                         + ("s" if result["steps"] != 1 else ""))
        if result.get("peak_memory_mb") is not None:
            found.append(f"{device} peak {result['peak_memory_mb']:,.0f} MB")
    return "; ".join(found)


def markdown_table(result: dict) -> str:
    """Rows model × mode, one column per device: images/s (ms per step of batch_size images)."""
    config, devices = result["meta"]["config"], result["meta"]["devices"]
    header = [f"backend {result['meta']['versions']['backend']}, keras {result['meta']['versions']['keras']}; "
              f"batch {config['batch_size']}, {config['image_size']}×{config['image_size']} px, "
              f"{config['steps']} steps after {config['warmup']} warm-up; precision "
              f"{'mixed' if config['mixed_precision'] else 'float32'}; "
              f"XLA {({None: 'as Keras chooses per device', True: 'on', False: 'off'})[config['xla']]}"]
    for device, facts in devices.items():
        header.append(f"{device}: {facts['name']}, float32 matmul peak {facts['matmul_gflops']:.1f} GFLOP/s"
                      if facts["present"] else f"{device}: absent ({facts['reason']})")
    measured: dict[tuple[str, str], dict[str, dict]] = {}
    for found in result["records"]:
        if found["mode"] != "device":
            measured.setdefault((found["model"], found["mode"]), {})[found["device"]] = found
    names = list(devices)
    rows = [(model, mode, *("absent" if not devices[d]["present"] else cell(by_device.get(d)) for d in names),
             notes(list(by_device.values()))) for (model, mode), by_device in measured.items()]
    table = tables.markdown_table(("model", "mode", *(f"{d} images/s (ms/step)" for d in names), "notes"), rows,
                                  "<<" + ">" * len(names))
    return "  \n".join(header) + "\n\n" + table + "\n"


def bar_chart(result: dict):
    """Horizontal bars of images/s per model × mode and device, on a log scale (modes differ 1000-fold)."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    measured = [r for r in result["records"] if r["status"] == "ok"]
    labels = list(dict.fromkeys(f"{r['model']} · {r['mode']}" for r in measured))
    devices = list(dict.fromkeys(r["device"] for r in measured))
    height = 0.8 / max(len(devices), 1)
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.32 * len(labels) * max(len(devices), 1)))
    for k, device in enumerate(devices):
        values = {f"{r['model']} · {r['mode']}": r["images_per_s"] for r in measured if r["device"] == device}
        positions = [i + k * height for i, label in enumerate(labels) if label in values]
        bars = axes.barh(positions, [values[label] for label in labels if label in values], height, label=device)
        axes.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    axes.set_yticks([i + height * (len(devices) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_xlabel("images per second (log scale)")
    config = result["meta"]["config"]
    axes.set_title(f"{result['meta']['versions']['backend']}, batch {config['batch_size']}, "
                   f"{config['image_size']} px", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    return figure


def write_report(result: dict, out_dir: str | Path) -> list[Path]:
    """benchmark.json (machines), benchmark.md (the table) and benchmark.png (the bar chart) in `out_dir`."""
    out_dir = Path(out_dir)
    table = markdown_table(result)
    return [write_json(out_dir / "benchmark.json", result),
            write_atomic(out_dir / "benchmark.md", lambda tmp: Path(tmp).write_text(table)),
            save_figure(out_dir / "benchmark.png", bar_chart(result))]


def index_parameters(record: dict) -> str:
    """A search record's index parameters, '(chosen…)' after the nprobe an IVF build picked, with the recall it
    measured on held-out vectors when it did."""
    given = ", ".join(f"{key} {value}" for key, value in record["parameters"].items()) or "-"
    if not record["chosen"] or "nprobe" not in record["parameters"]:
        return given
    held_out = record.get("held_out_recall")
    return given + f" (chosen{f': {held_out:.3f} held out' if held_out is not None else ''})"


def scale_table(result: dict) -> str:
    """The search records (size × index kind) and the embedding comparison as Markdown tables."""
    lines = [f"{result['machine']}; faiss {result['versions']['faiss']}, ray {result['versions']['ray']}", ""]
    searches = [r for r in result["records"] if r["mode"] == "search"]
    if searches:
        header = ("gallery", "vectors", "index", "parameters", "build s", "disk MB", "memory MB (+ mapped)",
                  "1 query p50 / p99 ms", "1 query CPU p50 / p99 ms", "100 queries p50 / p99 ms", "recall@10")
        rows = [(r["gallery"], f"{r['n']:,}", r["kind"], index_parameters(r), f"{r['build_s']:,.1f}",
                 f"{r['disk_mb']:,.0f}", f"{r['memory_mb']:,.0f} (+{r['mapped_mb']:,.0f})",
                 f"{r['single']['p50_ms']:.2f} / {r['single']['p99_ms']:.2f}",
                 f"{r['single']['cpu_p50_ms']:.2f} / {r['single']['cpu_p99_ms']:.2f}",
                 f"{r['batch_100']['p50_ms']:.1f} / {r['batch_100']['p99_ms']:.1f}", f"{r['recall_at_10']:.3f}")
                for r in searches]
        lines.append(tables.markdown_table(header, rows, "<><<>>>>>>>"))
    for r in (r for r in result["records"] if r["mode"] == "embed"):
        lines += ["", f"embedding {r['images']:,} images of {r['image_size']} px ({r['model']} latent): one process "
                      f"{r['one_process_s']:.1f} s, {r['workers']} Ray workers ({r['shards']} shards) "
                      f"{r['ray_s']:.1f} s "
                      f"({r['overhead_percent']:+.0f}%), largest vector difference {r['max_abs_difference']:.2g}"]
    return "\n".join(lines) + "\n"


def write_scale_report(result: dict, out_dir: str | Path) -> list[Path]:
    """search.json and search.md in `out_dir`."""
    out_dir = Path(out_dir)
    table = scale_table(result)
    return [write_json(out_dir / "search.json", result),
            write_atomic(out_dir / "search.md", lambda tmp: Path(tmp).write_text(table))]
