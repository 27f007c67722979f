"""t-SNE maps of the features: a seeded, class-balanced sample embedded in 2-D with openTSNE
(faster than scikit-learn; docs/pipeline.md "tsne")."""
from __future__ import annotations

import numpy as np
import pandas as pd
from openTSNE import TSNE
from threadpoolctl import threadpool_limits


def fair_shares(sizes: list[int], total: int) -> list[int]:
    """Split `total` among groups as evenly as their sizes allow (water-filling): a group smaller
    than its share gives the rest to the others. Earlier groups take the odd remainder."""
    shares = [0] * len(sizes)
    left = min(total, sum(sizes))
    pending = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    while pending:
        even = left // len(pending)
        smallest = pending[0]
        if sizes[smallest] <= even:
            shares[smallest] = sizes[smallest]
            left -= sizes[smallest]
            pending.pop(0)
            continue
        extra = left - even * len(pending)
        for rank, i in enumerate(sorted(pending)):
            shares[i] = even + (rank < extra)
        break
    return shares


def balanced_sample(rows: pd.DataFrame, max_points: int, seed: int) -> np.ndarray:
    """Row positions of at most max_points rows, seeded: as many real as fake (the smaller class
    limits both), and within a class the generators alike as far as their sizes allow; in row order."""
    rng = np.random.default_rng(seed)
    label, generator = rows.label.to_numpy(), rows.generator.to_numpy()
    classes = sorted(set(label))
    chosen = [np.array([], dtype=int)]
    quota = min([max_points // len(classes)] + [int((label == cls).sum()) for cls in classes])
    for cls in classes:
        groups = [np.flatnonzero((label == cls) & (generator == name)) for name in sorted(set(generator[label == cls]))]
        for group, share in zip(groups, fair_shares([len(group) for group in groups], quota)):
            chosen.append(rng.choice(group, size=share, replace=False))
    return np.sort(np.concatenate(chosen))


def embed(matrix: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """2-D t-SNE coordinates under cosine distance (the distance the nearest-neighbour detector
    uses). Perplexity is capped below a third of the points, as t-SNE requires. One thread, the
    BLAS of its PCA initialisation included: the coordinates depend on the thread count."""
    perplexity = min(perplexity, (len(matrix) - 1) / 3)
    with threadpool_limits(limits=1):
        return np.asarray(TSNE(perplexity=perplexity, metric="cosine", random_state=seed, n_jobs=1).fit(matrix))
