"""The compare stage's work: every configured detector fitted on the stored training (and validation)
features, scored on the validation and test rows, and judged under one protocol: the same metrics
(fakedetect.evaluation.metrics) at the same thresholds (fakedetect.detectors.thresholds), a
calibrated P(fake) judged by ECE and the Brier score (docs/detectors.md "The compare stage").

A detector that the features cannot serve (per-block features of imported features, noisy views
without images) is skipped with the reason, and the others run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from fakedetect.detectors import registry
from fakedetect.detectors.registry import FittedDetector, Inputs
from fakedetect.evaluation import metrics, published
from fakedetect.params import DetectorSpec

log = logging.getLogger("compare")

# The headline figures of each detector (metrics/compare.json): the mean over the test sets with both
# classes, at the calibrated threshold where a threshold is involved, and the worst such set.
HEADLINE = ("acc_calibrated", "ap", "auc", "tpr_at_fpr1", "tpr_at_fpr5", "ece", "brier", "worst_acc_calibrated")
# The published figures beside each kind that has them (evaluation/published.py).
PUBLISHED_NOTE = {"knn": "the notebook's 1-NN, on its own test files", "linear_probe": "UnivFD's linear probe, "
                  "mean over its 19 test sets (CLIP ViT-L/14)", "blocks": "RINE, mean over UnivFD's 19 test sets "
                  "(CLIP ViT-L/14 blocks); mean only", "fcnn": "the notebook's FCNN, on its own test files"}

# sigma -> the noisy features of the given rows (one view per sigma), or a reason why there are none
NoisySource = Callable[[float, int, np.ndarray], "np.ndarray | str"]


@dataclass
class Outcome:
    fitted: dict[str, FittedDetector] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # fit, score: logs and bench, never DVC outputs


def ordered(detectors: dict[str, DetectorSpec]) -> list[str]:
    """The torch kinds before the Keras ones (torch trained after TensorFlow has loaded crashes the
    process), fusions after the detectors they fuse."""
    return registry.in_run_order({name: spec.kind for name, spec in detectors.items()})


def published_beside(spec: DetectorSpec) -> dict | None:
    method = registry.PUBLISHED_AS.get(spec.kind)
    if method is None or spec.kind == "external_head":
        return None
    if spec.kind == "knn" and spec.settings.k != 1:
        return None
    figures = ({"mean": list(published.DETECTION_MEAN[method])} if method in published.DETECTION_MEAN
               else {name: list(numbers) for name, numbers in published.DETECTION.get(method, {}).items()})
    return {"as": method, "note": PUBLISHED_NOTE[spec.kind], "acc_ap": figures}


def run(matrix: np.ndarray, rows: pd.DataFrame, layers: list[tuple[str, int]], detectors: dict[str, DetectorSpec],
        noisy: NoisySource) -> Outcome:
    """Fit, score and judge every detector; `noisy(sigma, seed, row_indices)` gives noisy features."""
    split, labels = rows.split.to_numpy(), rows.label.to_numpy()
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    scored = np.flatnonzero(np.isin(split, metrics.SCORED_SPLITS))
    val_in_scored = np.isin(scored, val)
    out = Outcome()
    member_scores: dict[str, np.ndarray] = {}  # ranking scores on the scored rows
    for name in ordered(detectors):
        spec = detectors[name]
        why = registry.needs(spec, layers)
        if spec.kind == "fusion":
            missing = [m for m in spec.settings.members if m not in member_scores]
            why = why or (f"its members {', '.join(missing)} did not run" if missing else None)
        x, view_layers = (None, None) if why else registry.view(matrix, layers, spec.features, f"detectors.{name}")
        noisy_scored = {}
        if not why and spec.kind == "noise_sensitivity":
            settings = spec.settings
            found = noisy(settings.sigma, settings.seed, scored)
            if isinstance(found, str):
                why = found
            else:
                noisy_scored[settings.sigma] = registry.view(found, layers, spec.features, f"detectors.{name}")[0]
        if why:
            out.skipped[name] = why
            log.warning("detector %s skipped: %s", name, why)
            continue
        members = {m: member_scores[m] for m in spec.settings.members} if spec.kind == "fusion" else {}
        train_inputs = Inputs(x[train], view_layers)
        val_inputs = Inputs(x[val], view_layers, {s: v[val_in_scored] for s, v in noisy_scored.items()},
                            {m: s[val_in_scored] for m, s in members.items()})
        scored_inputs = Inputs(x[scored], view_layers, noisy_scored, members)
        start = time.perf_counter()
        detector = registry.fit(name, spec, train_inputs, labels[train], val_inputs, labels[val])
        fitted_at = time.perf_counter()
        result = detector.score(scored_inputs)
        out.seconds[name] = {"fit": fitted_at - start, "score": time.perf_counter() - fitted_at}
        member_scores[name] = result.ranking
        out.fitted[name] = detector
        out.reports[name] = detector_report(name, spec, detector, rows.iloc[scored], result)
        mean = out.reports[name]["report"]["mean"]
        log.info("%s (%s): calibrated accuracy %s%%, AP %s%%, ECE %s", name, spec.kind, mean["acc_calibrated"],
                 mean["ap"], mean.get("ece"))
    return out


def detector_report(name: str, spec: DetectorSpec, detector: FittedDetector, rows: pd.DataFrame,
                    result: registry.Scored) -> dict:
    method = registry.PUBLISHED_AS.get(spec.kind, name)
    if spec.kind == "knn" and spec.settings.k != 1:
        method = name
    report = metrics.report(rows, result.ranking, result.decision, method, probabilities=result.p_fake)
    two_class = [row for row in report["test_sets"].values() if row["n_real"] and row["n_fake"]]
    report["mean"]["worst_acc_calibrated"] = min(
        (row["acc_calibrated"] for row in two_class if row["acc_calibrated"] is not None), default=None)
    entry = {"kind": spec.kind, "features": spec.features, "params": spec.settings.model_dump(mode="json"),
             "thresholds": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in detector.thresholds.items()},
             "p_fake": ("the vote fraction of the k nearest (0 or 1 for k = 1); ranking by the similarity gap"
                        if spec.kind == "knn" else "the detector's probability, also its ranking score"),
             "report": report, "published": published_beside(spec)}
    if hasattr(detector.model, "block_weights"):
        entry["block_weights"] = detector.model.block_weights()
    return entry


def headline(outcome: Outcome) -> dict:
    """metrics/compare.json: a few figures per detector."""
    return {name: {figure: entry["report"]["mean"].get(figure) for figure in HEADLINE}
            for name, entry in outcome.reports.items()}


def tables(outcome: Outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plots' data: (detector x test set: calibrated accuracy and AP; detector x headline figure)."""
    cells = [{"detector": name, "test_set": test_set, "acc_calibrated": row["acc_calibrated"], "ap": row["ap"]}
             for name, entry in outcome.reports.items() for test_set, row in entry["report"]["test_sets"].items()]
    bars = [{"detector": name, "figure": figure, "value": entry["report"]["mean"].get(figure)}
            for name, entry in outcome.reports.items()
            for figure in ("acc_calibrated", "ap", "auc", "tpr_at_fpr1", "tpr_at_fpr5", "worst_acc_calibrated")]
    return (pd.DataFrame(cells, columns=["detector", "test_set", "acc_calibrated", "ap"]),
            pd.DataFrame(bars, columns=["detector", "figure", "value"]))
