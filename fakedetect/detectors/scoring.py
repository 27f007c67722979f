"""Fitted registry detectors as scorers: features -> (ranking score, the detector's own decision).
nn_eval, linear_eval, compare, robustness and `fakedetect predict` all score through the registry
(fakedetect.detectors.registry), so a change to the bank, the k-NN vote or a head reaches all at once;
robustness reads them in this form.

A detector's thresholds beyond its own decision (calibrated, operating points) are the ones it was
fitted with (fakedetect.detectors.thresholds.choose on its validation scores): a scorer carries them,
so that robustness applies at every grid point the thresholds the eval stages and compare report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fakedetect.detectors import registry

DECISION_THRESHOLD = 0.5  # a head's own decision: fake when P(fake) > 0.5


@dataclass(frozen=True)
class Scorer:
    """One classifier: features -> (ranking score, its own decision 0/1)."""

    key: str  # the method's key in the reports (the detector's name)
    name: str  # what it is, for people
    score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    thresholds: dict  # the detector's own (registry.FittedDetector.thresholds)


def decide(probabilities: np.ndarray) -> np.ndarray:
    """A head's own decision, 1 = fake, from its probabilities."""
    return (np.asarray(probabilities) > DECISION_THRESHOLD).astype(np.int64)


def of(key: str, detector: registry.FittedDetector, score: Callable[[np.ndarray], registry.Scored],
       name: str) -> Scorer:
    """A scorer of a registry detector and its scoring function (features -> Scored)."""

    def ranking_and_decision(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = score(x)
        return result.ranking, result.decision

    return Scorer(key, name, ranking_and_decision, detector.thresholds)


def saved(folder: str | os.PathLike, layers: list[tuple[str, int]]) -> tuple[dict[str, Scorer], dict[str, str]]:
    """The saved detectors as scorers, torch-side kinds first; and those left out, with why (a
    noise-sensitivity detector needs noisy views)."""
    details = registry.saved(folder)
    found, left_out = {}, {}
    for name in registry.in_run_order({n: d["kind"] for n, d in details.items()}):
        if registry.needs_noisy_views(name, details):
            left_out[name] = "it needs noisy views of each image, which are not computed here"
            continue
        detector, score = registry.score_function(folder, name, layers)
        found[name] = of(name, detector, score, f"{name} ({detector.spec.kind})")
    return found, left_out
