"""Cosine nearest neighbours (exact, or approximate with faiss_ivf) of query features in a bank of labelled training features.

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

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fakedetect.detectors import index_cache

log = logging.getLogger(__name__)

LABELS = (0, 1)  # real, fake
LABEL_NAMES = {0: "real", 1: "fake"}


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

    def vote_fraction(self, k: int) -> np.ndarray:
        """The share of fakes among the k nearest (the k best of the real and fake candidates; among
        equal similarities a real row counts as nearer)."""
        similarities = np.concatenate([self.real[:, :k], self.fake[:, :k]], axis=1)
        labels = np.repeat(np.array(LABELS, dtype=np.float64), k)
        # A stable sort puts the real columns first among equal similarities.
        nearest = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
        return labels[nearest].mean(axis=1)

    def predict(self, k: int) -> np.ndarray:
        """The tie rule (docs/detectors.md "The kinds"): the majority label of the k nearest; a tie
        (even k) goes to the nearest neighbour's label, and a nearest fake and real at equal
        similarity make it real."""
        fake_votes = 2 * np.rint(self.vote_fraction(k) * k)
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


@dataclass(frozen=True)
class Ivf:
    """An approximate (inverted-file) search's settings: nn.ivf (docs/capacity.md "Approximate search")."""

    nlist: int = 1024
    nprobe: int = 32
    pq_bytes: int = 0  # 0: flat codes (the normalised rows); else bytes per row of a PQ code
    refine: int = 0  # PQ codes: this many candidates per class re-ranked by their exact rows; 0: none
    train_rows: int = 50_000
    recall_queries: int = 1000
    seed: int = 0

    def built_with(self) -> dict:
        """The settings an index is built with (nprobe, refine and recall_queries act at search time)."""
        return {"nlist": self.nlist, "pq_bytes": self.pq_bytes, "train_rows": self.train_rows, "seed": self.seed}


class IvfBank:
    """The bank in two faiss IVF indexes (real rows, fake rows), built once, searched many times.
    Each is trained on a seeded sample of its rows; the nearest rows come back approximately:
    `recall` measures how often the nearest is the exact nearest. With PQ codes and `refine`, the
    index proposes `refine` candidates per class and their exact rows (read from `bank`) rank them.

    The indexes are kept in `cache_folder` (default: index_cache.default_folder()) and reused while
    the bank's rows and the build settings are unchanged; `reused` says, per label, which were."""

    def __init__(self, bank, bank_rows: np.ndarray, bank_labels: np.ndarray, ivf: Ivf, chunk_size: int = 4096,
                 cache_folder: str | os.PathLike | None = None):
        import faiss

        self.bank, self.ivf, self.chunk_size = bank, ivf, chunk_size
        bank_rows, bank_labels = np.asarray(bank_rows), np.asarray(bank_labels)
        self.rows = {label: bank_rows[bank_labels == label] for label in LABELS}
        if ivf.pq_bytes and bank.shape[1] % ivf.pq_bytes:
            raise ValueError(f"nn.ivf.pq_bytes: {ivf.pq_bytes} must divide the feature dimension {bank.shape[1]}")
        folder = Path(cache_folder) if cache_folder is not None else index_cache.default_folder()
        digest = index_cache.bank_digest(bank, bank_rows, bank_labels, chunk_size * 16)
        self.indexes, self.reused, self.refine = {}, {}, {}
        for label, rows in self.rows.items():
            path = index_cache.index_path(folder, bank=digest, label=label, **ivf.built_with())
            index = index_cache.load(path)
            self.reused[label] = index is not None
            if index is None:
                start = time.perf_counter()
                index = self._build(rows)
                index_cache.save(path, index)
                log.info("search index of the %d %s rows built in %.1f s, saved as %s", len(rows),
                         LABEL_NAMES[label], time.perf_counter() - start, path)
            else:
                log.info("search index of the %d %s rows reused from %s", len(rows), LABEL_NAMES[label], path)
            index.nprobe = min(ivf.nprobe, index.nlist)
            self.indexes[label] = index
            self.refine[label] = ivf.refine if isinstance(index, faiss.IndexIVFPQ) else 0  # flat codes are exact

    def _build(self, rows: np.ndarray):
        import faiss

        ivf, dim = self.ivf, self.bank.shape[1]
        nlist = max(1, min(ivf.nlist, len(rows) // 39))  # faiss wants >= 39 training rows per cell
        rng = np.random.default_rng(ivf.seed)
        sample = np.sort(rng.choice(len(rows), min(len(rows), max(ivf.train_rows, nlist)), replace=False))
        quantizer = faiss.IndexFlatIP(dim)
        if ivf.pq_bytes and len(sample) >= 256 * 39:  # 8-bit codes: 256 centroids per sub-quantizer
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, ivf.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)
            index.pq.cp.seed = ivf.seed
        else:
            if ivf.pq_bytes:
                log.info("%d training rows are too few for PQ codes (%d wanted): flat codes", len(sample), 256 * 39)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = ivf.seed
        index.train(normalise(self.bank[rows[sample]]))
        for start in tqdm(range(0, len(rows), self.chunk_size * 16), desc="search index", unit="chunk",
                          mininterval=2, leave=False):
            index.add(normalise(self.bank[rows[start:start + self.chunk_size * 16]]))
        return index

    def _top(self, unit_queries: np.ndarray, k: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per label: (similarities, bank-matrix rows), (queries, k), -inf / -1 padding."""
        found = {}
        for label, index in self.indexes.items():
            refine = self.refine[label]
            similarities = np.full((len(unit_queries), k), -np.inf, dtype=np.float32)
            ids = np.full((len(unit_queries), k), -1, dtype=np.int64)
            n = min(max(k, refine), index.ntotal)
            if n:
                d, i = index.search(unit_queries, n)
                rows = np.where(i >= 0, self.rows[label][np.maximum(i, 0)], -1)
                if refine:
                    d = self._exact_similarities(unit_queries, rows)
                d = np.where(rows >= 0, d, -np.inf)
                best = np.argsort(-d, axis=1, kind="stable")[:, :k]
                similarities[:, :best.shape[1]] = np.take_along_axis(d, best, axis=1)
                ids[:, :best.shape[1]] = np.take_along_axis(rows, best, axis=1)
            found[label] = (similarities, ids)
        return found

    def _exact_similarities(self, unit_queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of each query to each of its candidate bank rows (queries, candidates),
        reading about chunk_size rows of the bank at a time: a block of a few megabytes is reused by
        the allocator, where one of hundreds (chunk_size x 16 rows) was faulted in afresh each time,
        which cost more than reading the rows."""
        similarities = np.empty(rows.shape, dtype=np.float32)
        block = max(1, self.chunk_size // rows.shape[1])
        for q in range(0, len(rows), block):
            part = rows[q:q + block]
            candidates = np.asarray(self.bank[np.maximum(part, 0).ravel()], dtype=np.float32).reshape(*part.shape, -1)
            norms = np.sqrt(np.einsum("qrd,qrd->qr", candidates, candidates))  # no normalised copy of the rows
            dots = np.einsum("qrd,qd->qr", candidates, unit_queries[q:q + block])
            similarities[q:q + block] = dots / np.maximum(norms, np.float32(1e-12))
        return similarities

    def search(self, queries: np.ndarray, k: int = 1) -> Neighbours:
        found = self._top(normalise(queries), k)
        return Neighbours(real=found[0][0], fake=found[1][0])

    def recall(self, queries: np.ndarray) -> dict:
        """recall@1 against exact search on a seeded sample of the queries: the share whose
        approximate nearest row is an exact nearest (equal similarity, so ties count)."""
        rng = np.random.default_rng(self.ivf.seed)
        sample = np.sort(rng.choice(len(queries), min(len(queries), self.ivf.recall_queries), replace=False))
        unit = normalise(queries[sample])
        found = self._top(unit, 1)
        approx = np.where(found[1][0][:, 0] > found[0][0][:, 0], found[1][1][:, 0], found[0][1][:, 0])
        exact = np.full(len(unit), -np.inf, dtype=np.float32)
        rows = np.sort(np.concatenate(list(self.rows.values())))
        for start in range(0, len(rows), self.chunk_size):
            exact = np.maximum(exact, (unit @ normalise(self.bank[rows[start:start + self.chunk_size]]).T).max(axis=1))
        got = np.einsum("ij,ij->i", unit, normalise(self.bank[np.maximum(approx, 0)]))
        hits = (approx >= 0) & (got >= exact - 1e-6)
        return {"backend": "faiss_ivf", "nlist": int(self.indexes[0].nlist), "nprobe": int(self.indexes[0].nprobe),
                "pq_bytes": self.ivf.pq_bytes, "refine": self.refine[0], "recall_at_1": round(float(hits.mean()), 4),
                "queries_checked": int(len(sample))}


def _search_faiss_ivf(queries: np.ndarray, bank, bank_rows: np.ndarray, bank_labels: np.ndarray,
                      k: int, chunk_size: int, ivf: Ivf | None = None) -> dict[int, np.ndarray]:
    found = IvfBank(bank, bank_rows, bank_labels, ivf or Ivf(), chunk_size).search(queries, k)
    return {0: found.real, 1: found.fake}


BACKENDS = {"numpy": _search_numpy, "faiss": _search_faiss, "faiss_ivf": _search_faiss_ivf}
APPROXIMATE = ("faiss_ivf",)  # backends whose recall is measured and reported


def search(queries: np.ndarray, bank, bank_labels: np.ndarray, k: int = 1, chunk_size: int = 4096,
           bank_rows: np.ndarray | None = None, backend: str = "numpy", ivf: Ivf | None = None) -> Neighbours:
    """Top-k cosine similarities of every query to the real and to the fake bank rows: exact, or
    approximate with backend faiss_ivf (settings `ivf`; IvfBank builds once for many searches).

    `bank` is any 2-D array (a memory map works); `bank_rows` picks the bank's rows in it
    (default: all) and `bank_labels` gives their labels, 0 real or 1 fake, in that order.
    """
    bank_rows = np.arange(len(bank)) if bank_rows is None else np.asarray(bank_rows)
    bank_labels = np.asarray(bank_labels)
    if len(bank_labels) != len(bank_rows):
        raise ValueError(f"{len(bank_labels)} labels for {len(bank_rows)} bank rows")
    if not np.isin(bank_labels, LABELS).all():
        raise ValueError("bank labels must be 0 (real) or 1 (fake)")
    extra = {"ivf": ivf} if backend == "faiss_ivf" else {}
    best = BACKENDS[backend](normalise(queries), bank, bank_rows, bank_labels, k, chunk_size, **extra)
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
