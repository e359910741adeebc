"""Distribution metrics between a generated and a real image set, on images float32 NHWC in [0, 1].

- pixel histograms and their 1-D Wasserstein distance (the star-field seed's Fig. 4 compares average histograms);
- radially averaged power spectra (log10) and the L2 distance between their means;
- Fréchet and kernel distances on feature vectors (FID; KID as Bińkowski et al.'s u-statistic, which leaves
  the diagonal of every kernel matrix out, so its values differ slightly from TF-GAN's), and improved precision and
  recall (Kynkäänniemi et al. 2019, k = 3). They are called `domain` metrics where they are used, because the
  features come from a model trained here on the same kind of images (no Inception weights can be downloaded);
- star counts per field, with the star extraction of core/stars.py.

Histograms and spectra are computed batch by batch and summed, so 500 fields of 1000×1000 never sit in memory.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

from core.images import GREY_LEVELS, grey_levels
from core.stars import find_stars


def pixel_histogram(images: np.ndarray) -> np.ndarray:
    """Counts of the 256 grey levels over every pixel and channel of a batch (int64, 256)."""
    return np.bincount(grey_levels(images).ravel(), minlength=GREY_LEVELS).astype(np.int64)


def histogram_w1(histogram_a: np.ndarray, histogram_b: np.ndarray) -> float:
    """1-D Wasserstein distance between two pixel-intensity distributions given as grey-level counts, in units
    of the [0, 1] intensity scale (scipy's `wasserstein_distance` on the levels, weighted by the counts)."""
    levels = np.arange(len(histogram_a)) / (len(histogram_a) - 1)
    return float(wasserstein_distance(levels, levels, histogram_a, histogram_b))


@lru_cache(maxsize=8)
def _band_index(height: int, width: int, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """For an rfft2 of (height, width): the band of every frequency (-1 for the constant term) and the number
    of frequencies per band. Band i holds radial frequencies in (i, i + 1] · 0.5 / bands cycles per pixel, so
    images of different sizes share the bands; the corners beyond Nyquist (up to 0.71) join the last band."""
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.rfftfreq(width), indexing="ij"))
    index = np.minimum(np.ceil(radius * 2 * bands - 1e-9).astype(np.int64) - 1, bands - 1)
    counts = np.bincount(index[index >= 0], minlength=bands)
    return index, counts


def radial_power_spectrum(images: np.ndarray, bands: int = 32) -> np.ndarray:
    """(n, bands) log10 of the mean power per radial frequency band of each image (channels averaged).

    Power is |FFT|² / (height · width), so white noise of variance σ² has power σ² at every frequency whatever
    the image size; the constant term (the mean brightness, which the histogram already holds) is left out.
    Every band holds frequencies when the images are at least 2·bands px on each side.
    """
    images = np.asarray(images, np.float32)
    n, height, width = images.shape[:3]
    if min(height, width) < 2 * bands:
        raise ValueError(f"a power spectrum in {bands} bands needs images of at least {2 * bands} px, "
                         f"got {height}×{width}")
    gray = images.mean(axis=-1) if images.ndim == 4 else images
    power = np.abs(scipy.fft.rfft2(gray, axes=(1, 2), workers=-1)) ** 2 / (height * width)
    index, counts = _band_index(height, width, bands)
    keep = index.ravel() >= 0
    flat_index = index.ravel()[keep]
    spectra = np.stack([np.bincount(flat_index, weights=p.ravel()[keep], minlength=bands) for p in power])
    return np.log10(spectra / counts + 1e-12)


def power_spectrum_distance(spectra_a: np.ndarray, spectra_b: np.ndarray) -> float:
    """L2 distance between the mean log10 spectra of two sets ((n, bands) arrays, or their means)."""
    mean_a, mean_b = (np.atleast_2d(s).mean(axis=0) for s in (spectra_a, spectra_b))
    return float(np.linalg.norm(mean_a - mean_b))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID's Fréchet distance between Gaussians fitted to two feature sets:
    |μa - μb|² + Tr(Σa + Σb - 2 (Σa Σb)^½).

    Tr((Σa Σb)^½) is the sum of the square roots of the eigenvalues of Σa Σb (real and non-negative, as for any
    product of covariance matrices, up to rounding), which stays exact where sqrtm fails: singular covariances
    from features that never vary (dead ReLU units) or from fewer vectors than dimensions.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    covariance_a, covariance_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_trace = np.sqrt(np.clip(np.linalg.eigvals(covariance_a @ covariance_b).real, 0, None)).sum()
    distance = np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.trace(covariance_a + covariance_b) - 2 * root_trace
    return float(max(distance, 0.0))       # rounding can leave -1e-12 for identical sets


def polynomial_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD between two samples of equal size with KID's kernel k(x, y) = (x·y / d + 1)³: the
    U-statistic of Gretton et al. (Bińkowski et al.'s KID code, mmd_est='u-statistic'), which leaves out the pairs
    (i, i) of every kernel matrix, so a sample against itself gives exactly 0."""
    dimensions, m = a.shape[1], len(a)
    kernels = ((x @ y.T / dimensions + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    within_a, within_b, between = (k.sum() - np.trace(k) for k in kernels)
    return float((within_a + within_b - 2 * between) / (m * (m - 1)))


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 50, subset_size: int = 100,
                    seed: int = 0) -> dict[str, float]:
    """KID: the unbiased polynomial-kernel MMD² averaged over random subsets of both sets (Bińkowski et al.);
    mean and standard deviation over `subsets` draws of min(subset_size, set sizes) vectors from each set (drawn
    with the same seed from both, so that a set against itself gives 0)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(a)} and {len(b)}")

    def subset(x: np.ndarray, draw: int) -> np.ndarray:
        return x[np.random.default_rng([seed, draw]).choice(len(x), size, replace=False)]

    values = [polynomial_mmd2(subset(a, draw), subset(b, draw)) for draw in range(subsets)]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "subsets": subsets, "subset_size": size}


def manifold_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance of every vector to its k-th nearest neighbour in its own set (itself not counted)."""
    distances = cdist(features, features)
    return np.partition(distances, k, axis=1)[:, k]


def precision_recall(real_features: np.ndarray, generated_features: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the share of generated vectors inside
    the real manifold (within the k-NN radius of some real vector), recall the share of real vectors inside the
    generated one."""
    real, generated = np.asarray(real_features, np.float64), np.asarray(generated_features, np.float64)
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"precision and recall with k = {k} need more than {k} vectors per set, "
                         f"got {len(real)} and {len(generated)}")
    between = cdist(generated, real)
    precision = np.mean((between <= manifold_radii(real, k)[None, :]).any(axis=1))
    recall = np.mean((between <= manifold_radii(generated, k)[:, None]).any(axis=0))
    return {"precision": float(precision), "recall": float(recall), "k": k}


def knn_accuracy(reference: np.ndarray, reference_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
                 k: int = 10) -> float:
    """Share of queries whose k nearest reference vectors (Euclidean) vote for the query's class: how well an
    embedding separates classes without training anything on it. A tie goes to the class of the nearer neighbours."""
    reference, queries = np.asarray(reference, np.float64), np.asarray(queries, np.float64)
    reference_labels, query_labels = np.asarray(reference_labels), np.asarray(query_labels)
    k = min(k, len(reference))
    nearest = np.argsort(cdist(queries, reference, "sqeuclidean"), axis=1, kind="stable")[:, :k]
    classes = np.union1d(reference_labels, query_labels)
    # one vote per neighbour, plus less than one vote in all that favours nearer ranks, which only breaks ties
    weights = 1 + (k - np.arange(k)) / (k * (k + 1))
    found = np.searchsorted(classes, reference_labels[nearest])
    votes = np.zeros((len(queries), len(classes)))
    np.add.at(votes, (np.arange(len(queries))[:, None], found), weights)
    return float(np.mean(classes[votes.argmax(axis=1)] == query_labels))


def star_counts(images: np.ndarray, threshold: float = 32.0, min_distance: int = 15) -> np.ndarray:
    """Stars detected in each image (its first channel as grey levels), by core.stars.find_stars."""
    return np.array([len(find_stars(field[..., 0], threshold, min_distance)) for field in grey_levels(images)],
                    np.int64)
