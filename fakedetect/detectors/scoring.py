"""The one scoring path: how each classifier turns features into a ranking score and its own
decision. nn_eval, linear_eval, robustness and `fakedetect predict` all score through it, so a
change to the bank, the k-NN vote or a head's decision reaches all four at once.

A Scorer is fitted already (the bank is built, the head trained); its thresholds beyond its own
decision (calibrated, operating points) come from fakedetect.detectors.thresholds.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from fakedetect.detectors import neighbours
from fakedetect.params import NnParams
from fakedetect.stage import UserError

DECISION_THRESHOLD = 0.5  # a head's own decision: fake when P(fake) > 0.5


@dataclass(frozen=True)
class Scorer:
    """One classifier: features -> (ranking score, its own decision 0/1)."""

    key: str  # the method's key in the reports (nn, linear)
    name: str  # what it is, for people
    score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    # An approximate search's report on some queries (backend, recall@1 against exact search); None when exact.
    search_report: Callable[[np.ndarray], dict] | None = None


def decide(probabilities: np.ndarray) -> np.ndarray:
    """A head's own decision, 1 = fake, from its probabilities."""
    return (np.asarray(probabilities) > DECISION_THRESHOLD).astype(np.int64)


def training_bank(rows: pd.DataFrame, where: str) -> np.ndarray:
    """The rows of the k-NN bank (the training split), which must hold both classes."""
    labels, split = rows.label.to_numpy(), rows.split.to_numpy()
    bank = np.flatnonzero(split == "train")
    if not ((labels[bank] == 0).any() and (labels[bank] == 1).any()):
        raise UserError(f"{where}: the training split must hold real and fake rows: they are the bank")
    return bank


def nearest_neighbour(matrix: np.ndarray, rows: pd.DataFrame, p: NnParams, where: str) -> Scorer:
    """nn_eval's classifier: the k nearest of the training bank by cosine similarity. The score is the
    similarity to the nearest fake minus that to the nearest real; the decision the k nearest's vote.
    `where` names the features in messages."""
    bank = training_bank(rows, where)
    if p.k > len(bank):
        raise UserError(f"nn.k: {p.k} neighbours, but the bank has only {len(bank)} training rows")
    if p.backend.startswith("faiss") and importlib.util.find_spec("faiss") is None:
        raise UserError(f"nn.backend: {p.backend} needs faiss, which is not installed (pip install faiss-cpu), "
                        "or choose numpy")
    labels = rows.label.to_numpy()[bank]
    if p.backend in neighbours.APPROXIMATE:
        approximate = neighbours.IvfBank(matrix, bank, labels, neighbours.Ivf(**p.ivf.model_dump()), p.chunk_size)

        def approximate_score(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            found = approximate.search(queries, p.k)
            return found.score, found.predict(p.k)

        return Scorer("nn", f"{p.k}-NN ({p.backend})", approximate_score, approximate.recall)

    def score(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = neighbours.search(queries, matrix, labels, p.k, p.chunk_size, bank_rows=bank, backend=p.backend)
        return found.score, found.predict(p.k)

    return Scorer("nn", f"{p.k}-NN", score)


def head(predict: Callable[[np.ndarray], np.ndarray], name: str) -> Scorer:
    """linear_eval's classifier: a head's probability of fake, and its decision at 0.5."""

    def score(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = predict(queries)
        return probabilities, decide(probabilities)

    return Scorer("linear", name, score)
