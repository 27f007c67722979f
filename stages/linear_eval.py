"""Stage linear_eval: the trained head (or an external UnivFD-format head) scores every test set ->
metrics/linear_eval.json (headline figures), reports/linear_eval.json (all figures and the calibrated
threshold), ROC/PR curves under plots/linear_eval/, and
plots/accuracy_vs_published.png (this method and nn_eval beside the published numbers).
"""
import json
import logging

from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins TensorFlow's kernels and instruction sets before numpy and TensorFlow load
from pathlib import Path

import numpy as np

from fakedetect import atomic, stage
from fakedetect.detectors import scoring
from fakedetect.features import feature_files
from fakedetect.detectors import linear_head
from fakedetect.evaluation import metrics, plots
from fakedetect.artifacts import ACCURACY_CHART, FEATURES, LINEAR_CURVES, LINEAR_METRICS, LINEAR_REPORT, NN_REPORT
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("linear_eval")


def main() -> None:
    p = load_params().linear
    matrix, rows = feature_files.load_features(FEATURES)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to evaluate")
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS))

    head = linear_head.load(p, matrix.shape[1])
    probabilities, decisions = scoring.head(head.predict, head.name).score(matrix[scored])
    report = metrics.report(rows.iloc[scored], probabilities, decisions, head.published_as, probabilities=probabilities)
    report["head"] = p.external_head or p.head
    atomic.write_json(LINEAR_REPORT, report)
    atomic.write_json(LINEAR_METRICS, metrics.headline(report))
    skipped = plots.save_curves(LINEAR_CURVES, rows.iloc[scored], probabilities)
    if skipped:
        log.info("no ROC/PR curves for one-class test sets: %s", ", ".join(skipped))
    reports = {}
    if Path(NN_REPORT).is_file():
        nn = json.loads(Path(NN_REPORT).read_text())
        reports[f"{nn['k']}-NN"] = nn
    reports[head.name] = report
    plots.accuracy_vs_published(reports, ACCURACY_CHART)
    log.info("%s on %d validation and test rows: mean accuracy %s%%, mean AP %s%%", head.name, len(scored),
             report["mean"]["acc"], report["mean"]["ap"])


if __name__ == "__main__":
    stage.run(main)
