"""Stage nn_eval: data/features -> metrics/nn_eval.json (headline figures), reports/nn_eval.json (all
figures, the calibrated threshold, the bank) and ROC/PR curves under plots/nn_eval/.

Every validation and test feature is matched against the bank of training features
(cosine similarity, exact unless nn.backend is approximate: then its recall@1 against exact
search is measured and reported under "search"; the label of the nearest, or the majority of the k nearest).
The ranking score for AP and ROC is the similarity to the nearest fake minus that to
the nearest real; the validation rows calibrate a threshold on it.
"""
import logging

import numpy as np

from fakedetect import atomic, stage
from fakedetect.features import feature_files
from fakedetect.evaluation import metrics, plots
from fakedetect.detectors import scoring
from fakedetect.artifacts import FEATURES, NN_CURVES, NN_METRICS, NN_REPORT
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("nn_eval")


def knn_vote_fraction(matrix: np.ndarray, rows, scored: np.ndarray, p) -> np.ndarray:
    from fakedetect.detectors import basic, neighbours

    bank = scoring.training_bank(rows, FEATURES)
    found = neighbours.search(matrix[scored], matrix, rows.label.to_numpy()[bank], p.k, p.chunk_size, bank_rows=bank,
                              backend=p.backend)
    return basic.vote_fraction(found, p.k)


def main() -> None:
    p = load_params().nn
    matrix, rows = feature_files.load_features(FEATURES)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to evaluate")
    scorer = scoring.nearest_neighbour(matrix, rows, p, FEATURES)
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS))
    scores, decisions = scorer.score(matrix[scored])
    # The notebook published 1-NN only: with another k there is nothing published to compare with.
    method = "notebook_nn" if p.k == 1 else f"{p.k}-nn"
    # P(fake) for ECE and the Brier score: the vote fraction of the k nearest (the decision itself for k = 1).
    p_fake = decisions if p.k == 1 else knn_vote_fraction(matrix, rows, scored, p)
    report = metrics.report(rows.iloc[scored], scores, decisions, method, probabilities=p_fake)
    report["k"] = p.k
    if scorer.search_report is not None:  # approximate search: how often its nearest is the exact nearest
        report["search"] = scorer.search_report(matrix[scored])
    bank = rows.label[rows.split == "train"]
    report["bank"] = {"n_real": int((bank == 0).sum()), "n_fake": int((bank == 1).sum())}
    atomic.write_json(NN_REPORT, report)
    atomic.write_json(NN_METRICS, metrics.headline(report))
    skipped = plots.save_curves(NN_CURVES, rows.iloc[scored], scores)
    if skipped:
        log.info("no ROC/PR curves for one-class test sets: %s", ", ".join(skipped))
    log.info("%d-NN on %d validation and test rows against a bank of %d: mean accuracy %s%%, mean AP %s%%",
             p.k, len(scored), len(bank), report["mean"]["acc"], report["mean"]["ap"])


if __name__ == "__main__":
    stage.run(main)
