"""Comparing two benchmark runs: speed-up of A over B and the cost of a million images on each."""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import DataError
from core.tables import text_table
from evaluation.benchmark.config import PRICES


def load_result(path: str | Path) -> dict:
    """A benchmark.json written by `run` / `write_report`."""
    try:
        result = json.loads(Path(path).read_text())
        records = result["records"]
        if not all({"model", "mode", "device", "status", "images_per_s"} <= set(r) for r in records):
            raise KeyError("a record without model, mode, device, status and images_per_s")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"'{path}' is not a readable benchmark.json ({' '.join(str(error).split())}). "
                        "Pass files written by 'evaluate.py benchmark --out DIR'") from None
    return result


def compare(a: dict, b: dict, price_a: float = PRICES["p3.8xlarge"], price_b: float = PRICES["t3.xlarge"],
            device_a: str = "gpu", device_b: str = "cpu") -> list[dict]:
    """Per model × mode measured in both: A's speed-up over B, and the $ per 1M images on each at $/hour prices."""
    def measured(result: dict, device: str) -> dict[tuple[str, str], float]:
        return {(r["model"], r["mode"]): r["images_per_s"] for r in result["records"]
                if r["status"] == "ok" and r["device"] == device}

    fast, slow = measured(a, device_a), measured(b, device_b)
    shared = [key for key in fast if key in slow]
    if not shared:
        raise DataError(f"the two files share no measurement of A on {device_a} and B on {device_b}. "
                        "Pass a benchmark.json from each machine, or choose --device-a / --device-b")
    return [{"model": model, "mode": mode, "a_images_per_s": fast[model, mode], "b_images_per_s": slow[model, mode],
             "speed_up": fast[model, mode] / slow[model, mode],
             "a_usd_per_million": price_a * 1e6 / fast[model, mode] / 3600,
             "b_usd_per_million": price_b * 1e6 / slow[model, mode] / 3600}
            for model, mode in shared]


def compare_table(rows: list[dict], device_a: str = "gpu", device_b: str = "cpu") -> str:
    """The rows of `compare` as text: images/s on each machine, A's speed-up, and $ per 1M images on each."""
    header = ("model", "mode", f"A {device_a} img/s", f"B {device_b} img/s", "speed-up", "A $/1M img", "B $/1M img")
    cells = [(r["model"], r["mode"], f"{r['a_images_per_s']:,.1f}", f"{r['b_images_per_s']:,.1f}",
              f"{r['speed_up']:.2f}×", f"{r['a_usd_per_million']:.3f}", f"{r['b_usd_per_million']:.3f}") for r in rows]
    return text_table(header, cells, "<<>>>>>")
