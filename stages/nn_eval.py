"""Stage nn_eval: data/features -> metrics/nn_eval.json (headline figures), reports/nn_eval.json (all
figures, the thresholds, the bank) and ROC/PR curves under plots/nn_eval/.

It scores the registry's `knn` detector with params `nn` (fakedetect.detectors.pipeline_detectors):
every validation and test feature is matched against the bank of training features (cosine
similarity, exact unless nn.backend is approximate: then its recall@1 against exact search is
measured and reported under "search"; the label of the nearest, or the majority of the k nearest).
The ranking score for AP and ROC is the similarity to the nearest fake minus that to the nearest
real; the validation rows calibrate a threshold on it. The compare stage's `knn` is the same detector.
"""
import logging

import numpy as np

from fakedetect import atomic, stage
from fakedetect.features import feature_files
from fakedetect.evaluation import metrics, plots
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.artifacts import FEATURES, NN_CURVES, NN_METRICS, NN_REPORT
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("nn_eval")


def main() -> None:
    params = load_params()
    p = params.nn
    matrix, rows = feature_files.load_features(FEATURES, mapped=True)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to evaluate")
    detector = pipeline_detectors.fit_knn(params, matrix, rows, FEATURES)
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS))
    result = detector.score(registry.Inputs(matrix[scored], [("all", matrix.shape[1])]))
    method = registry.published_as(detector.spec) or f"{p.k}-nn"
    report = metrics.report(rows.iloc[scored], result.ranking, result.decision, method,
                            probabilities=result.p_fake, thresholds=detector.thresholds)
    report["k"] = p.k
    search = detector.model.search_report(matrix[scored])
    if search is not None:  # approximate search: how often its nearest is the exact nearest
        report["search"] = search
    bank = rows.label[rows.split == "train"]
    report["bank"] = {"n_real": int((bank == 0).sum()), "n_fake": int((bank == 1).sum())}
    atomic.write_json(NN_REPORT, report)
    atomic.write_json(NN_METRICS, metrics.headline(report, pipeline_detectors.KNN))
    skipped = plots.save_curves(NN_CURVES, rows.iloc[scored], result.ranking)
    if skipped:
        log.info("no ROC/PR curves for one-class test sets: %s", ", ".join(skipped))
    metrics.log_warnings(log, "knn", report)
    log.info("%d-NN on %d validation and test rows against a bank of %d: mean accuracy %s%%, mean AP %s%%",
             p.k, len(scored), len(bank), report["mean"]["acc"], report["mean"]["ap"])


if __name__ == "__main__":
    stage.run(main)
