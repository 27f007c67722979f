"""The detectors a run trained, their decisions at each operating point, and one image's verdicts.

The list of detectors is data: every detector the compare stage saved (models/detectors) that
predict can run, predict's default (the protocols' choice, else the best validation AP) first; a run
without them lists the pipeline stages' classifiers predict knows (predict.REPORTS), the linear head
(predict's fallback) first. The first one's fields are the image's own (they equal `fakedetect predict --json`); every
detector also appears in `detectors` with its decisions at its own thresholds.
"""
from __future__ import annotations

import json
from pathlib import Path

from fakedetect.artifacts import DETECTOR_MODELS
from fakedetect.predict import REPORTS, Detector, Prediction

TITLES = {"linear": "linear head (linear_eval)", "nn": "nearest neighbours (nn_eval)"}
# The operating points of docs/serve.md "What the page shows": (key, its name in a detector's
# thresholds, label).
POINTS = (("calibrated", "calibrated", "at the calibrated threshold"),
          ("fpr1", "tpr_at_fpr1", "at the 1% false-alarm point"),
          ("fpr5", "tpr_at_fpr5", "at the 5% false-alarm point"))


def report_thresholds(project: Path, name: str) -> dict:
    """A pipeline stage classifier's thresholds, from its eval report, named as a saved detector names them."""
    report = json.loads((project / REPORTS[name]).read_text())
    return {"calibrated": report.get("calibrated_threshold"), **(report.get("operating_thresholds") or {})}


def operating_points(thresholds: dict) -> list[dict]:
    """A detector's operating points, each with its label (absent ones left out)."""
    return [{"point": key, "label": label, "threshold": float(thresholds[where])}
            for key, where, label in POINTS if thresholds.get(where) is not None]


def others(project: Path, primary: Detector) -> tuple[dict[str, dict], dict[str, str]]:
    """The detectors listed beside predict's default: name -> Detector's keyword arguments (torch
    kinds before Keras ones); and those left out, with why."""
    if primary.detector is None:
        return {name: {"classifier": name} for name in REPORTS if name != primary.classifier}, {}
    from fakedetect.detectors import registry

    saved = registry.saved(project / DETECTOR_MODELS)
    listed, left_out = {}, {}
    for name in registry.in_run_order({n: d["kind"] for n, d in saved.items()}):
        if registry.needs_noisy_views(name, saved):
            left_out[name] = "it needs noisy views of each image, which predict does not compute"
        elif name != primary.detector:
            listed[name] = {"detector": name}
    return listed, left_out


def title(project: Path, detector: Detector) -> str:
    """What the page calls a detector."""
    if detector.detector is None:
        return TITLES.get(detector.classifier, detector.classifier)
    from fakedetect.detectors import registry

    details = registry.saved(project / DETECTOR_MODELS)[detector.detector]
    ap = (details.get("validation") or {}).get("ap")
    return (f"{detector.detector} ({registry.kind_class(details['kind']).title or details['kind']}"
            + (f", validation AP {ap:.2f}%)" if ap is not None else ")"))


def thresholds(project: Path, detector: Detector) -> dict:
    return detector.thresholds if detector.detector is not None else report_thresholds(project, detector.classifier)


def detector_entry(name: str, title: str, prediction: Prediction, points: list[dict], default: bool = False) -> dict:
    """One detector's verdict: P(fake), the score its thresholds apply to, and each decision:
    `score > threshold` on the unrounded score, the comparison predict's `fake` comes from, so the
    two agree at the calibrated threshold however close the score is to it. The numbers shown are
    rounded as predict prints them. `default`: predict's own detector."""
    if prediction.status != "ok":
        return {"name": name, "title": title, "default": default, "p_fake": None, "score": None, "decisions": []}
    key = next((k for k in ("score", "nn_score") if k in prediction.extra), "p_fake")
    score = prediction.extra.get(key, prediction.p_fake)
    shown = prediction.row()
    return {"name": name, "title": title, "default": default, "p_fake": shown["p_fake"], "score": shown[key],
            "fake": prediction.fake, "decisions": [{**point, "fake": score > point["threshold"]} for point in points]}
