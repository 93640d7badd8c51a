"""k-means at the scale of a teacher's features: :func:`fkt_plugin.clustering.kmeans` (faiss)
against scikit-learn's ``KMeans`` on the same features, with the same k, initialisation
(k-means++), iterations and one run each, interleaved."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from tqdm import tqdm

from fkt_plugin.benchmarks.timing import alternate, markdown_table, write_report
from fkt_plugin.clustering import kmeans


def synthetic_features(count: int, dim: int, groups: int, separation: float = 1.0,
                       seed: int = 0) -> np.ndarray:
    """``(count, dim)`` float32 features around ``groups`` random centres drawn with standard
    deviation ``separation`` per dimension, plus unit-variance noise: at 1.0 the typical
    distance between centres is sqrt(2) times the noise radius."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=separation, size=(groups, dim)).astype(np.float32)
    members = rng.integers(0, groups, size=count)
    return centres[members] + rng.normal(size=(count, dim)).astype(np.float32)


def run(count: int, dim: int, k: int, iterations: int, rounds: int, separation: float,
        out: Path | None, command: str) -> None:
    """Times both arms ``rounds`` times (order reversed every other round); prints and writes
    the table of median seconds and the inertia each reached."""
    x = synthetic_features(count, dim, groups=k, separation=separation)
    arms = ("faiss (fkt-plugin)", "scikit-learn KMeans")
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    inertia: dict[str, float] = {}
    for r in tqdm(range(rounds), desc="rounds", leave=False):
        for arm in alternate(list(arms), r):
            start = time.perf_counter()
            if arm == arms[0]:
                inertia[arm] = kmeans(x, k, restarts=1, iterations=iterations, seed=r).inertia
            else:
                fitted = KMeans(k, init="k-means++", n_init=1, max_iter=iterations, tol=0.0,
                                algorithm="lloyd", random_state=r).fit(x)
                inertia[arm] = float(fitted.inertia_)
            seconds[arm].append(time.perf_counter() - start)
    median = {arm: statistics.median(values) for arm, values in seconds.items()}
    rows = [[arm, f"{median[arm]:.1f}", f"{inertia[arm]:.4g}",
             f"{median[arms[1]] / median[arm]:.1f}x"] for arm in arms]
    header = ["k-means", "median s", "inertia (last round)", "speed-up vs scikit-learn"]
    notes = [
        f"{count:,} x {dim} float32 features around {k:,} random centres (separation "
        f"{separation:g}); k = {k:,}, "
        f"k-means++ initialisation, {iterations} Lloyd iterations, one run per round; "
        f"{rounds} round(s), arms interleaved. torch threads {torch.get_num_threads()} "
        "(faiss and scikit-learn use their own thread pools on every core).",
    ]
    write_report(out, "k-means: faiss against scikit-learn", command,
                 f"CPU; faiss through fkt_plugin.clustering; torch {torch.__version__}",
                 markdown_table(header, rows), notes)
