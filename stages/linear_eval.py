"""Stage linear_eval: the linear stages' head (the one linear_train fitted, or linear.external_head: a
registry detector, fakedetect.detectors.pipeline_detectors) scores every test set ->
metrics/linear_eval.json (headline figures), reports/linear_eval.json (all figures and the thresholds),
ROC/PR curves under plots/linear_eval/, and plots/accuracy_vs_published.png (this method and nn_eval
beside the published numbers). The compare stage's detector of kind linear.head is the same head.
"""
import json
import logging

from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins TensorFlow's kernels and instruction sets before numpy and TensorFlow load
from pathlib import Path

import numpy as np

from fakedetect import atomic, stage
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.features import feature_files
from fakedetect.evaluation import metrics, plots
from fakedetect.artifacts import ACCURACY_CHART, FEATURES, LINEAR_CURVES, LINEAR_METRICS, LINEAR_REPORT, NN_REPORT
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("linear_eval")


def main() -> None:
    params = load_params()
    p = params.linear
    matrix, rows = feature_files.load_features(FEATURES)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to evaluate")
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS))

    head = pipeline_detectors.linear_detector(params, matrix, rows)
    result = head.score(registry.Inputs(matrix[scored], [("all", matrix.shape[1])]))
    name = "external UnivFD head" if p.external_head else p.head
    report = metrics.report(rows.iloc[scored], result.ranking, result.decision,
                            registry.published_as(head.spec) or name, probabilities=result.p_fake,
                            thresholds=head.thresholds)
    report["head"] = p.external_head or p.head
    atomic.write_json(LINEAR_REPORT, report)
    atomic.write_json(LINEAR_METRICS, metrics.headline(report, p.head if not p.external_head else "external_head"))
    skipped = plots.save_curves(LINEAR_CURVES, rows.iloc[scored], result.ranking)
    if skipped:
        log.info("no ROC/PR curves for one-class test sets: %s", ", ".join(skipped))
    metrics.log_warnings(log, name, report)
    reports = {}
    if Path(NN_REPORT).is_file():
        nn = json.loads(Path(NN_REPORT).read_text())
        reports[f"{nn['k']}-NN"] = nn
    reports[name] = report
    plots.accuracy_vs_published(reports, ACCURACY_CHART)
    log.info("%s on %d validation and test rows: mean accuracy %s%%, mean AP %s%%", name, len(scored),
             report["mean"]["acc"], report["mean"]["ap"])


if __name__ == "__main__":
    stage.run(main)
