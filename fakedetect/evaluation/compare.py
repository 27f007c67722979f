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

# The figures of the plots' bars (plots/compare/headline.csv); metrics/compare.json holds metrics.HEADLINE.
BARS = ("acc_calibrated", "ap", "auc", "tpr_at_fpr1", "tpr_at_fpr5", "worst_acc_calibrated")
# sigma, seed, row indices -> the noisy features of those rows, or a reason why there are none
NoisySource = Callable[[float, int, np.ndarray], "np.ndarray | str"]


@dataclass
class Outcome:
    fitted: dict[str, FittedDetector] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # fit, score: logs and bench, never DVC outputs
    default: dict = field(default_factory=dict)  # predict's default detector and why (registry.default_detector)
    scored: dict[str, registry.Scored] = field(default_factory=dict)  # each one's scores on the scored rows


def ordered(detectors: dict[str, DetectorSpec]) -> list[str]:
    """The torch-side kinds before the Keras ones (torch trained after TensorFlow has loaded crashes the
    process), fusions after the detectors they fuse."""
    return registry.in_run_order({name: spec.kind for name, spec in detectors.items()})


def published_beside(spec: DetectorSpec) -> dict | None:
    method = registry.published_as(spec)
    if method is None:
        return None
    figures = ({"mean": list(published.DETECTION_MEAN[method])} if method in published.DETECTION_MEAN
               else {name: list(numbers) for name, numbers in published.DETECTION.get(method, {}).items()})
    return {"as": method, "note": published.NOTES[method], "acc_ap": figures}


def run(matrix: np.ndarray, rows: pd.DataFrame, layers: list[tuple[str, int]], detectors: dict[str, DetectorSpec],
        noisy: NoisySource, reuse: dict[str, Callable[[], object]] | None = None, folder: str | None = None) -> Outcome:
    """Fit, score and judge every detector; `noisy(sigma, seed, row_indices)` gives noisy features.
    `reuse`: name -> a loader of a model fitted by another stage (linear_train's head), calibrated here,
    not fitted again;
    `folder`: the feature folder `matrix` was read from (a k-NN bank refers to its rows)."""
    split, labels = rows.split.to_numpy(), rows.label.to_numpy()
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    scored = np.flatnonzero(np.isin(split, metrics.SCORED_SPLITS))
    val_in_scored = np.isin(scored, val)
    out = Outcome()
    member_scores: dict[str, np.ndarray] = {}  # ranking scores on the scored rows
    for name in ordered(detectors):
        spec, where = detectors[name], f"detectors.{name}"
        why, notes = registry.needs(spec, layers), []
        wanted = registry.members(spec)
        ran = [m for m in wanted if m in member_scores]
        if wanted and not ran:
            why = why or f"none of its members ({', '.join(wanted)}) ran"
        elif len(ran) < len(wanted):
            notes.append(f"fuses the members that ran ({', '.join(ran)}); left out: "
                         + "; ".join(f"{m}: {out.skipped.get(m, 'not run')}" for m in wanted if m not in ran))
            spec = registry.with_members(spec, ran)
        noisy_scored = {}
        for sigma, seed in [] if why else registry.noisy_views(spec):
            found = noisy(sigma, seed, scored)
            if isinstance(found, str):
                why = found
                break
            noisy_scored[sigma] = registry.view(found, layers, spec.features, where)[0]
        why = why or registry.cannot_fit(spec, labels[train], labels[val])
        if why:
            out.skipped[name] = why
            log.warning("detector %s skipped: %s", name, why)
            continue
        for note in notes:
            log.warning("detector %s: %s", name, note)
        x, view_layers = registry.view(matrix, layers, spec.features, where)
        members = {m: member_scores[m] for m in ran}
        train_inputs = registry.inputs(matrix, layers, spec, train, where, folder)
        val_inputs = Inputs(x[val], view_layers, {s: v[val_in_scored] for s, v in noisy_scored.items()},
                            {m: s[val_in_scored] for m, s in members.items()})
        scored_inputs = Inputs(x[scored], view_layers, noisy_scored, members)
        start = time.perf_counter()
        if name in (reuse or {}):
            log.info("%s: reusing the head linear_train fitted (not fitted again)", name)
            detector = registry.adopt(name, spec, reuse[name](), val_inputs, labels[val])
        else:
            detector = registry.fit(name, spec, train_inputs, labels[train], val_inputs, labels[val])
        fitted_at = time.perf_counter()
        result = detector.score(scored_inputs)
        out.seconds[name] = {"fit": fitted_at - start, "score": time.perf_counter() - fitted_at}
        member_scores[name] = result.ranking
        out.scored[name] = result
        out.fitted[name] = detector
        out.reports[name] = detector_report(name, spec, detector, rows.iloc[scored], result, notes)
        mean, calibration = out.reports[name]["report"]["mean"], detector.thresholds["calibration"]
        log.info("%s (%s): %s, AP %s%%, ECE %s; validation AP %s%% (%s)", name, spec.kind,
                 f"calibrated accuracy {mean['acc_calibrated']}%" if mean["acc_calibrated"] is not None
                 else f"no calibrated threshold ({calibration})", mean["ap"], mean.get("ece"),
                 detector.validation["ap"], detector.validation["how"])
        metrics.log_warnings(log, name, out.reports[name]["report"])
    details = {name: {"kind": d.spec.kind, "features": d.spec.features, "params": d.spec.params,
                      "validation": d.validation} for name, d in out.fitted.items()}
    best, why = registry.default_detector(details)
    out.default = {"detector": best, "why": why}
    log.info("predict's default detector: %s: %s", best, why)
    return out


def detector_report(name: str, spec: DetectorSpec, detector: FittedDetector, rows: pd.DataFrame,
                    result: registry.Scored, notes: list[str] | None = None) -> dict:
    method = registry.published_as(spec) or name
    report = metrics.report(rows, result.ranking, result.decision, method, probabilities=result.p_fake,
                            thresholds=detector.thresholds)
    entry = {"kind": spec.kind, "features": spec.features, "params": spec.settings.model_dump(mode="json"),
             "thresholds": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in detector.thresholds.items()},
             "validation": detector.validation, "p_fake": type(detector.model).p_fake,
             "report": report, "published": published_beside(spec), "notes": notes or []}
    entry |= detector.model.report_extras()
    return entry


def headline(outcome: Outcome) -> dict:
    """metrics/compare.json: each detector's metrics.HEADLINE figures (named as nn_eval's and linear_eval's)."""
    return {name: figures for entry_name, entry in outcome.reports.items()
            for name, figures in metrics.headline(entry["report"], entry_name).items()}


def tables(outcome: Outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plots' data: (detector x test set: calibrated accuracy and AP; detector x headline figure)."""
    cells = [{"detector": name, "test_set": test_set, "acc_calibrated": row["acc_calibrated"], "ap": row["ap"]}
             for name, entry in outcome.reports.items() for test_set, row in entry["report"]["test_sets"].items()]
    bars = [{"detector": name, "figure": figure, "value": entry["report"]["mean"].get(figure)}
            for name, entry in outcome.reports.items()
            for figure in BARS]
    return (pd.DataFrame(cells, columns=["detector", "test_set", "acc_calibrated", "ap"]),
            pd.DataFrame(bars, columns=["detector", "figure", "value"]))
