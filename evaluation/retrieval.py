"""How good is a representation for finding similar galaxies: precision@k of same-class neighbours.

Each image of a run's held-out validation split is a query; its k nearest training images (exact FAISS search,
the same distance as `evaluate.py neighbours`) count as hits when they share its class. The learned embedding
(`latent` or `scores`) is measured against the seed's pixel-MSE baseline on exactly the same images, and both
against chance (the precision of k neighbours drawn at random from the gallery). Each embedding also gets its
linear-probe accuracy: a logistic regression on the standardised training vectors, scored on the held-out ones.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.files import save_figure, write_json
from core.runs import load_config
from core.tables import text_table
from datasets.pipeline import run_split
from search.embedding import embed_source, embedder, open_run
from search.gallery import build_index, check_k


def precision_at_k(gallery: np.ndarray, gallery_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
                   k: int) -> tuple[float, np.ndarray]:
    """Mean share of same-class images among each query's k nearest gallery images, and that share per query."""
    check_k(k, len(gallery))
    _, found = build_index(gallery, exact_limit=len(gallery)).search(np.ascontiguousarray(queries, np.float32), k)
    per_query = np.mean(gallery_labels[found] == np.asarray(query_labels)[:, None], axis=1)
    return float(per_query.mean()), per_query


def chance_precision(gallery_labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Expected precision@k of randomly chosen neighbours: sum over classes of query share × gallery share."""
    classes = np.union1d(gallery_labels, query_labels)
    gallery_share = np.array([np.mean(gallery_labels == c) for c in classes])
    query_share = np.array([np.mean(query_labels == c) for c in classes])
    return float(gallery_share @ query_share)


def linear_probe_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                          max_iter: int = 1000) -> float:
    """Accuracy on `test` of a logistic regression fitted on frozen, standardised `train` vectors: how much class
    information an embedding holds in a linearly readable form (the standard score of self-supervised learning)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(train_labels)) < 2:
        raise DataError("the linear probe needs at least two classes in the training split. Use more images")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # 12,288 pixels rarely converge: still a fair score
        probe.fit(train, train_labels)
    return float(np.mean(probe.predict(test) == test_labels))


def evaluate_retrieval(run_dir: str | Path, k: int = 10, embedding: str | None = None,
                       out_dir: str | Path | None = None, **spec_overrides) -> dict:
    """precision@k and linear-probe accuracy of the run's embedding and of pixels on its validation split (queries
    and probe test set), against its training split (gallery and probe training set); retrieval.json/.png in
    out_dir."""
    run = open_run(run_dir, embedding, **spec_overrides)
    spec, model, embedding = run.spec, run.model, run.embedding
    config = replace(load_config(run_dir), seed=spec.seed)   # the gallery's seed (--seed) also draws its split
    if embedding == "pixels":
        raise DataError("retrieval always measures pixels as the baseline. "
                        "Pass --embedding latent or scores (or leave it out)")
    embedders = {"pixels": embedder(None, "pixels"), embedding: run.embed}
    source = spec.open()
    if not source.labeled:
        raise DataError(f"retrieval needs class labels, but dataset '{source.name}' is unlabeled. "
                        "Use a labeled dataset (synthetic-galaxies, galaxy10, a folder of class sub-folders)")
    gallery, gallery_labels = embed_source(run_split(config, source, "train"), embedders, spec)
    queries, query_labels = embed_source(run_split(config, source), embedders, spec)
    check_k(k, len(gallery_labels))
    results = {"run": str(run_dir), "model": model.zoo_name, "dataset": spec.dataset, "k": k,
               "n_queries": len(query_labels), "n_gallery": len(gallery_labels),
               "chance": chance_precision(gallery_labels, query_labels), "class_names": list(source.class_names)}
    for name in embedders:
        precision, per_query = precision_at_k(gallery[name], gallery_labels, queries[name], query_labels, k)
        probe = linear_probe_accuracy(gallery[name], gallery_labels, queries[name], query_labels)
        results[name] = {"precision_at_k": precision, "linear_probe": probe, "dimensions": int(gallery[name].shape[1]),
                         "per_class": {class_name: float(per_query[query_labels == c].mean())
                                       for c, class_name in enumerate(source.class_names)
                                       if np.any(query_labels == c)}}
    if out_dir is not None:
        write_json(Path(out_dir) / "retrieval.json", results)
        save_figure(Path(out_dir) / "retrieval.png", retrieval_figure(results, [embedding, "pixels"]))
    return results


def retrieval_figure(results: dict, embeddings: list[str]):
    """Bars of precision@k per class and overall, one colour per embedding, with chance as a dashed line."""
    import matplotlib.pyplot as plt

    groups = ["all", *results[embeddings[0]]["per_class"]]
    width = 0.8 / len(embeddings)
    figure, axes = plt.subplots(figsize=(1.2 + 1.1 * len(groups), 3.4))
    for offset, name in enumerate(embeddings):
        values = [results[name]["precision_at_k"], *results[name]["per_class"].values()]
        positions = np.arange(len(groups)) + (offset - (len(embeddings) - 1) / 2) * width
        bars = axes.bar(positions, values, width, label=f"{name} ({results[name]['dimensions']:,}-d)")
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.axhline(results["chance"], color="grey", linestyle="--", linewidth=1, label=f"chance {results['chance']:.2f}")
    axes.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=8)
    axes.set_ylim(0, 1.3)  # head room for the legend above the bars
    axes.set_ylabel(f"precision@{results['k']}")
    axes.set_title(f"{results['model']} on {results['dataset']}: {results['n_queries']} held-out queries, "
                   f"{results['n_gallery']} gallery images", fontsize=9)
    axes.legend(fontsize=7, loc="upper left", ncols=3)
    figure.tight_layout()
    return figure


def format_results(results: dict) -> str:
    """A small text table: embedding, dimensions, precision@k, linear-probe accuracy, and chance."""
    rows = [(name, f"{value['dimensions']:,}", f"{value['precision_at_k']:.3f}", f"{value['linear_probe']:.3f}")
            for name, value in results.items() if isinstance(value, dict) and "precision_at_k" in value]
    rows.append(("chance", "", f"{results['chance']:.3f}"))
    return text_table(("embedding", "dimensions", f"precision@{results['k']}", "linear probe"), rows, "<>>>")
