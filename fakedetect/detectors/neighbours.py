"""Exact cosine nearest neighbours of query features in a bank of labelled training features.

The search keeps, for every query, the k highest similarities to the real rows of
the bank and the k highest to the fake rows: that is all that the k-NN vote and the
ranking score (max similarity to fakes minus max similarity to reals)
need. It walks the bank in chunks and multiplies each against blocks of queries, so
beyond its inputs and one normalised copy of the queries it holds a few
chunk_size x chunk_size blocks, whatever the bank's size; it never copies the bank:
`bank_rows` selects the bank inside a larger matrix (bench/nn.py: 2.44 GB peak for a
720k x 768 bank and 34k queries, 2.16 GB of which are the inputs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

LABELS = (0, 1)  # real, fake


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that inner products are cosine similarities."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


@dataclass(frozen=True)
class Neighbours:
    """The k highest cosine similarities of each query to the real and to the fake bank rows.

    Both arrays are (queries, k), in decreasing order; -inf pads a class with fewer than k rows.
    """

    real: np.ndarray
    fake: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """Ranking score: similarity to the nearest fake minus similarity to the nearest real."""
        return self.fake[:, 0].astype(np.float64) - self.real[:, 0].astype(np.float64)

    def predict(self, k: int) -> np.ndarray:
        """Majority label of the k nearest; a tie (even k) goes to the nearest neighbour's label."""
        similarities = np.concatenate([self.real[:, :k], self.fake[:, :k]], axis=1)
        labels = np.repeat(np.array(LABELS), k)
        # A stable sort puts the real columns first among equal similarities: ties go to real.
        nearest = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
        fake_votes = 2 * labels[nearest].sum(axis=1)
        return np.where(fake_votes == k, self.score > 0, fake_votes > k).astype(np.int64)


def _merge_top_k(best: np.ndarray, similarities: np.ndarray) -> None:
    """Fold a block of similarities (queries x bank rows) into the running top-k, in place."""
    k = best.shape[1]
    if k == 1:
        np.maximum(best[:, 0], similarities.max(axis=1), out=best[:, 0])
        return
    if similarities.shape[1] > k:
        similarities = np.partition(similarities, -k, axis=1)[:, -k:]
    both = np.concatenate([best, similarities], axis=1)
    best[:] = -np.sort(-both, axis=1)[:, :k]


def _search_numpy(queries: np.ndarray, bank, bank_rows: np.ndarray, bank_labels: np.ndarray,
                  k: int, chunk_size: int) -> dict[int, np.ndarray]:
    best = {label: np.full((len(queries), k), -np.inf, dtype=np.float32) for label in LABELS}
    starts = range(0, len(bank_rows), chunk_size)
    for start in tqdm(starts, desc="nearest neighbours", unit="chunk", mininterval=2, leave=False, disable=len(starts) < 2):
        stop = start + chunk_size
        chunk = normalise(bank[bank_rows[start:stop]])
        chunk_labels = bank_labels[start:stop]
        for label in LABELS:
            part = chunk[chunk_labels == label]
            if len(part) == 0:
                continue
            for q in range(0, len(queries), chunk_size):
                _merge_top_k(best[label][q:q + chunk_size], queries[q:q + chunk_size] @ part.T)
    return best


def _search_faiss(queries: np.ndarray, bank, bank_rows: np.ndarray, bank_labels: np.ndarray,
                  k: int, chunk_size: int) -> dict[int, np.ndarray]:
    import faiss

    best = {}
    for label in LABELS:
        rows = bank_rows[bank_labels == label]
        index = faiss.IndexFlatIP(queries.shape[1])
        for start in range(0, len(rows), chunk_size):
            index.add(normalise(bank[rows[start:start + chunk_size]]))
        found = min(k, index.ntotal)
        similarities = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if found:
            similarities[:, :found] = index.search(queries, found)[0]
        best[label] = similarities
    return best


BACKENDS = {"numpy": _search_numpy, "faiss": _search_faiss}


def search(queries: np.ndarray, bank, bank_labels: np.ndarray, k: int = 1, chunk_size: int = 4096,
           bank_rows: np.ndarray | None = None, backend: str = "numpy") -> Neighbours:
    """Exact top-k cosine similarities of every query to the real and to the fake bank rows.

    `bank` is any 2-D array (a memory map works); `bank_rows` picks the bank's rows in it
    (default: all) and `bank_labels` gives their labels, 0 real or 1 fake, in that order.
    """
    bank_rows = np.arange(len(bank)) if bank_rows is None else np.asarray(bank_rows)
    bank_labels = np.asarray(bank_labels)
    if len(bank_labels) != len(bank_rows):
        raise ValueError(f"{len(bank_labels)} labels for {len(bank_rows)} bank rows")
    if not np.isin(bank_labels, LABELS).all():
        raise ValueError("bank labels must be 0 (real) or 1 (fake)")
    best = BACKENDS[backend](normalise(queries), bank, bank_rows, bank_labels, k, chunk_size)
    return Neighbours(real=best[0], fake=best[1])


def top_k(queries: np.ndarray, bank, k: int = 5, chunk_size: int = 4096,
          bank_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar bank rows of every query, whatever their label: (indices into `bank`,
    cosine similarities), both (queries, k) in decreasing similarity (ties: the lower index first).
    Walks the bank in chunks like `search`; fewer than k rows pad with index -1 and -inf."""
    bank_rows = np.arange(len(bank)) if bank_rows is None else np.asarray(bank_rows)
    queries = normalise(queries)
    best_sim = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_idx = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(bank_rows), chunk_size):
        rows = bank_rows[start:start + chunk_size]
        sims = np.concatenate([best_sim, queries @ normalise(bank[rows]).T], axis=1)
        idx = np.concatenate([best_idx, np.broadcast_to(rows, (len(queries), len(rows)))], axis=1)
        order = _order(sims, idx)[:, :k]
        best_sim = np.take_along_axis(sims, order, axis=1)
        best_idx = np.take_along_axis(idx, order, axis=1)
    return best_idx, best_sim


def _order(similarities: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per row, the column order by decreasing similarity, then increasing index (padding last)."""
    key_index = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    return np.stack([np.lexsort((key_index[q], -similarities[q])) for q in range(len(similarities))])
