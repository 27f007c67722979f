"""The detectors a run trained, their decisions at each operating point, and one image's verdicts.

The list of detectors is data: every classifier predict knows (predict.REPORTS) whose artifacts the
run holds. The first is predict's default, whose fields are the image's own (they equal
`fakedetect predict --json`); every detector also appears in `detectors` with its decisions.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from fakedetect.detectors.predict import REPORTS, Prediction

PRIMARY = "linear"  # predict's default classifier
TITLES = {"linear": "linear head (linear_eval)", "nn": "nearest neighbours (nn_eval)"}
# The operating points of docs/serve.md "What the page shows": (key, where the threshold is, label).
POINTS = (("calibrated", ("calibrated_threshold",), "at the calibrated threshold"),
          ("fpr1", ("operating_thresholds", "tpr_at_fpr1"), "at the 1% false-alarm point"),
          ("fpr5", ("operating_thresholds", "tpr_at_fpr5"), "at the 5% false-alarm point"))
PREDICT_FIELDS = ["path", "status", "reason", "p_fake", "fake", "threshold", "fake_at_0_5", "family", "p_family"]


def operating_points(project: Path, name: str) -> list[dict]:
    """The thresholds of one detector's eval report, each with its label (absent ones left out)."""
    report = json.loads((project / REPORTS[name]).read_text())
    points = []
    for key, where, label in POINTS:
        value = report
        for part in where:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            points.append({"point": key, "label": label, "threshold": float(value)})
    return points


def predict_row(prediction: Prediction) -> dict:
    """The fields `fakedetect predict --json` prints for one image (cli._row's)."""
    row = asdict(prediction)
    return {**{c: row[c] for c in PREDICT_FIELDS}, **row["extra"]}


def detector_entry(name: str, title: str, prediction: Prediction, points: list[dict]) -> dict:
    """One detector's verdict: P(fake), the score its thresholds apply to, and each decision
    (`score > threshold`, as predict and the eval stages decide)."""
    if prediction.status != "ok":
        return {"name": name, "title": title, "p_fake": None, "score": None, "decisions": []}
    score = prediction.extra.get("nn_score", prediction.p_fake)
    decisions = [{**point, "fake": bool(score > point["threshold"])} for point in points]
    return {"name": name, "title": title, "p_fake": prediction.p_fake, "score": score,
            "fake": prediction.fake, "decisions": decisions}
