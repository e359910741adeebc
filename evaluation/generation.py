"""New images from a trained model, written as PNGs with a grid: samples from a generative model's prior, or
Milky-Way-like images decoded from noisy copies of the Milky Way's latent vector (the seed's bonus task).

Images are made and written batch by batch, so 500 star fields of 1000×1000 never sit in memory together;
only the first GRID_IMAGES are kept, shrunk, for grid.png. One-channel images are written as grayscale PNGs.
The same run, n, seed and batch size give the same images.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

import zoo
from core.errors import ModelError
from core.files import save_figure, write_json, write_png
from core.images import image_grid, resize_batch
from core.runs import load_config
from datasets.pipeline import make_dataset, run_split, to_numpy
from search.embedding import gallery_spec
from search.queries import load_query, query_title

GRID_IMAGES = 64          # at most this many images in grid.png (at least GRID_MIN_IMAGES when n allows)
GRID_MIN_IMAGES = 16
GRID_FRAME = 0.4          # grey between grid cells
GRID_SIDE = 2048          # px, grid.png is at most about this wide; larger images are shrunk to fit
SPREAD_IMAGES = 256       # validation images encoded to measure the spread of the latent codes
DEFAULT_NOISE = 0.5


def batch_seed(seed: int, batch: int) -> int:
    """Independent seeds for the batches of one request, derived from (seed, batch number)."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


def sampled_batches(model, n: int, seed: int, batch_size: int) -> Iterator[np.ndarray]:
    """n images from the model's `generate`, batch by batch."""
    for batch, start in enumerate(range(0, n, batch_size)):
        yield model.generate(min(batch_size, n - start), seed=batch_seed(seed, batch))


def near_batches(model, centre: np.ndarray, spread: np.ndarray, n: int, noise: float, seed: int,
                 batch_size: int) -> Iterator[np.ndarray]:
    """Decoded latent vectors centre + noise × spread × N(0, 1): noise 1 moves each component by its typical
    spread over the dataset, so the scale means the same for an autoencoder and a VAE."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch_size):
        steps = rng.standard_normal((min(batch_size, n - start), len(centre))).astype(np.float32)
        yield model.decode(centre + noise * spread * steps)


def image_names(n: int) -> list[str]:
    digits = max(4, len(str(n - 1)))
    return [f"image_{i:0{digits}d}.png" for i in range(n)]


def check_out_dir(out_dir: Path, n: int) -> None:
    """Refuses a folder holding more generated images than this request writes (a mix would look like one set)."""
    stale = sorted(set(p.name for p in out_dir.glob("image_*.png")) - set(image_names(n))) if out_dir.is_dir() else []
    if stale:
        raise ModelError(f"{out_dir} already holds {len(stale)} other generated images ({stale[0]}, ...). "
                         "Choose another --out or empty the folder")


def write_batches(batches: Iterator[np.ndarray], out_dir: Path, n: int) -> dict:
    """Writes image_NNNN.png for every image and grid.png of the first few (64 small or 16 large images, shrunk
    to keep the grid about GRID_SIDE wide); returns timings and the image shape."""
    names = image_names(n)
    cells: list[np.ndarray] = []
    seconds = {"generate": 0.0, "write": 0.0}
    written = 0
    with tqdm(total=n, unit="img", desc="generating", leave=False) as progress:
        while written < n:
            started = time.perf_counter()
            batch = np.asarray(next(batches), np.float32)
            seconds["generate"] += time.perf_counter() - started
            started = time.perf_counter()
            if written == 0:
                shape = batch.shape[1:]
                shown = min(n, GRID_IMAGES, max(GRID_MIN_IMAGES, (GRID_SIDE // shape[0]) ** 2))
                columns = math.ceil(math.sqrt(shown))
                cell = min(shape[0], GRID_SIDE // columns)
            if written < shown:
                cells.extend(resize_batch(batch[:shown - written], cell))
            for image in batch:
                write_png(out_dir / names[written], image)
                written += 1
            seconds["write"] += time.perf_counter() - started
            progress.update(len(batch))
    write_png(out_dir / "grid.png", image_grid(np.stack(cells), columns=columns, fill=GRID_FRAME))
    return {"seconds": seconds, "image_shape": list(shape)}


def reconstruction_error(model, query: np.ndarray, sample: np.ndarray) -> tuple[dict, np.ndarray]:
    """Pixel MSE of the query's reconstruction, beside the same error over dataset images for scale; and the
    query's reconstruction."""
    reconstruction = model.reconstruct(query)
    sample_errors = np.mean((model.reconstruct(sample) - sample) ** 2, axis=(1, 2, 3))
    return {"query": float(np.mean((reconstruction - query) ** 2)), "dataset_mean": float(sample_errors.mean()),
            "dataset_median": float(np.median(sample_errors)), "dataset_images": len(sample)}, reconstruction


def reconstruction_figure(query: np.ndarray, reconstruction: np.ndarray, title: str, mse: float):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(4.4, 2.5))
    for axis, image, label in zip(axes, (query[0], reconstruction[0]), (title, f"reconstruction, MSE {mse:.4f}")):
        axis.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
        axis.set_title(label, fontsize=8)
        axis.set_axis_off()
    figure.tight_layout()
    return figure


def generate_images(run_dir: str | Path, out_dir: str | Path, n: int = 16, seed: int = 0, near: str | None = None,
                    noise: float | None = None, batch_size: int = 16) -> dict:
    """Writes n images of the run's model to out_dir (PNGs, grid.png, generation.json) and returns the summary.

    near=None samples from the model's prior (`generate`); near='milky-way' or an image path encodes that image,
    decodes noisy copies of its latent vector (`noise`, default 0.5, in units of the dataset's latent spread),
    and also reports how well the image itself is reconstructed (reconstruction.png, reconstruction_mse).
    """
    if n <= 0 or batch_size <= 0:
        raise ModelError(f"--n and --batch-size must be positive, got {n} and {batch_size}. Use e.g. --n 16")
    if noise is not None and near is None:
        raise ModelError("--noise only applies to --near. Add --near milky-way or drop --noise")
    if noise is not None and noise < 0:
        raise ModelError(f"--noise must be 0 or more, got {noise}. Use e.g. --noise 0.5")
    out_dir = Path(out_dir)
    model = zoo.load(run_dir)
    offered = zoo.capabilities(model)
    summary = {"run": str(run_dir), "model": model.zoo_name, "n": n, "seed": seed, "batch_size": batch_size,
               "near": near, "noise": None}
    if near is None:
        if "generate" not in offered and {"encode", "decode"} <= set(offered):
            raise ModelError(f"model '{model.zoo_name}' cannot sample from a prior. Use --near milky-way (or an "
                             "image file) to decode noisy copies of that image's latent vector")
        zoo.require(model, "generate", refusal=f"model '{model.zoo_name}' cannot generate images",
                    advice="Use a run of {models}")
        check_out_dir(out_dir, n)
        batches = sampled_batches(model, n, seed, batch_size)
    else:
        zoo.require(model, "encode", "decode", every=True,
                    refusal=f"model '{model.zoo_name}' cannot encode and decode, so --near does not apply",
                    advice="Use a run of {models}" + (", or drop --near to sample from the model"
                                                      if "generate" in offered else ""))
        spec = gallery_spec(run_dir)
        source = spec.open()
        query = load_query(near, spec, source.channels)
        check_out_dir(out_dir, n)
        held_out = run_split(load_config(run_dir), source)
        sample, _ = to_numpy(make_dataset(held_out, image_size=spec.image_size, crop=spec.crop,
                                          batch_size=SPREAD_IMAGES, cache=False).take(1))
        noise = DEFAULT_NOISE if noise is None else noise
        spread = model.encode(sample).std(axis=0)
        errors, reconstruction = reconstruction_error(model, query, sample)
        summary.update(noise=noise, latent_spread_mean=float(spread.mean()), reconstruction_mse=errors)
        save_figure(out_dir / "reconstruction.png", reconstruction_figure(query, reconstruction, query_title(near),
                                                                          errors["query"]))
        batches = near_batches(model, model.encode(query)[0], spread, n, noise, seed, batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_batches(batches, out_dir, n)
    total = written["seconds"]["generate"] + written["seconds"]["write"]
    summary.update(written, images_per_second=n / total if total > 0 else None)
    write_json(out_dir / "generation.json", summary)
    return summary
