"""Stage linear_eval: the trained head (or an external UnivFD-format head) scores every test set ->
metrics/linear_eval.json (headline figures), reports/linear_eval.json (all figures and the calibrated
threshold), ROC/PR curves under plots/linear_eval/, and
plots/accuracy_vs_published.png (this method and nn_eval beside the published numbers).
"""
import json
import logging
from pathlib import Path

import numpy as np

from fakedetect import atomic, features, metrics, plots, stage
from fakedetect.artifacts import (ACCURACY_CHART, FEATURES, LINEAR_CURVES, LINEAR_METRICS, LINEAR_MODEL, LINEAR_REPORT,
                                  NN_REPORT)
from fakedetect.params import load_params
from fakedetect.stage import UserError

# Which published table each head is compared with.
PUBLISHED_AS = {"fcnn": "notebook_fcnn", "linear_probe": "univfd_linear_probe"}
log = logging.getLogger("linear_eval")


def _score(p, matrix: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Fake probabilities from the chosen head, the published table to compare with, and the head's name.

    Keras and torch stay in separate processes (DESIGN §8): only the side needed is imported.
    """
    if p.external_head:
        from fakedetect import univfd_head

        weight, bias = univfd_head.load(p.external_head, matrix.shape[1])
        return univfd_head.predict(weight, bias, matrix), "univfd_linear_probe", "external UnivFD head"
    from fakedetect import classifiers

    model = classifiers.load(LINEAR_MODEL)
    if model.input_shape[-1] != matrix.shape[1]:
        raise UserError(f"{LINEAR_MODEL} expects {model.input_shape[-1]} features but {FEATURES} has "
                        f"{matrix.shape[1]}: run linear_train again (dvc repro)")
    return classifiers.predict(model, matrix), PUBLISHED_AS[p.head], p.head


def main() -> None:
    p = load_params().linear
    matrix, rows = features.load_features(FEATURES)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to evaluate")
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS))

    probabilities, method, head = _score(p, matrix[scored])
    report = metrics.report(rows.iloc[scored], probabilities, (probabilities > 0.5).astype(np.int64), method)
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
    reports[head] = report
    plots.accuracy_vs_published(reports, ACCURACY_CHART)
    log.info("%s on %d validation and test rows: mean accuracy %s%%, mean AP %s%%", head, len(scored),
             report["mean"]["acc"], report["mean"]["ap"])


if __name__ == "__main__":
    stage.run(main)
