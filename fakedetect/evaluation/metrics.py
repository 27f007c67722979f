"""Detection metrics per test set, their mean, and the published numbers beside them.

All rates are percentages, as the papers print them. `acc`, `real_acc` and `fake_acc`
score the method's own decision (fake probability > 0.5, or the k-NN vote); AP, ROC
AUC and the two tuned accuracies use its score (the probability, or the k-NN
similarity gap) with the rule `score > threshold`. The oracle threshold is the best
one for the test set itself (an upper bound, UnivFD's "best threshold"); the
calibrated threshold is the best one on the validation split, applied to the test set.

A metric that a test set cannot define (AP or ROC AUC of a real-only control set, its
fake accuracy) is None, written as null: a one-class set is scored by its accuracy,
which is then its specificity (real only) or its detection rate (fake only).

Calibration, where a method gives P(fake) (`report(..., probabilities=)`): ECE, the expected
calibration error over ECE_BINS equal-width bins of P(fake) (the sum over bins of |bin|/N *
|mean label - mean P|), and the Brier score, mean (P - y)^2 with y = 1 for fake; both are
fractions in [0, 1] (lower is better), not percentages. `worst_acc` is the lowest accuracy of a
test set with both classes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fakedetect.detectors import thresholds as thresholds_module
from fakedetect.detectors.thresholds import FALSE_POSITIVE_RATES, best_threshold
from fakedetect.evaluation import published
from fakedetect.stage import UserError

SCORED_SPLITS = ("val", "test")
METRICS = ("acc", "real_acc", "fake_acc", "ap", "auc", "acc_oracle", "acc_calibrated", "tpr_at_fpr1", "tpr_at_fpr5")
# The figures a paper's table gives per test set, with the operating points a moderator works at:
# the metrics files (what `dvc metrics show` and `dvc metrics diff` print) hold these per set and for
# the mean; the report keeps every figure.
CALIBRATION = ("ece", "brier")  # per set and for the mean, where the method gives P(fake)
# The figures of each detector in the headline metrics files (nn_eval, linear_eval, compare: the mean
# over the test sets with both classes; robustness: their mean over the perturbation grid). The same
# names in each, so `dvc metrics show` puts one detector's figure from every file in one column; few,
# so that the whole table stays within 1,500 characters with every detector under UnivFD's protocol.
# Per-set figures, ECE and the rest are in reports/.
HEADLINE = ("ap", "acc_calibrated", "tpr_at_fpr5")
ECE_BINS = 15
ATTRIBUTION_HEADLINE = ("acc", "balanced_acc", "ap")  # per attribution level, and the 3-way hierarchy


def _percent(value) -> float | None:
    return None if value is None else round(100.0 * float(value), 4)


def set_metrics(labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray,
                calibrated_threshold: float | None = None,
                operating: dict[str, float | None] | None = None) -> dict:
    """Metrics of one test set: labels 0/1, ranking scores, predicted labels (the method's decision).
    `operating` holds the thresholds of the operating points (operating_thresholds); the true-positive
    rate at each is null for a set without both classes."""
    labels, scores, predicted = np.asarray(labels), np.asarray(scores, np.float64), np.asarray(predicted)
    real, fake = labels == 0, labels == 1
    both = bool(real.any() and fake.any())
    correct = predicted == labels
    return {
        "acc": _percent(correct.mean()) if len(labels) else None,
        "real_acc": _percent(correct[real].mean()) if real.any() else None,
        "fake_acc": _percent(correct[fake].mean()) if fake.any() else None,
        "ap": _percent(average_precision_score(labels, scores)) if both else None,
        "auc": _percent(roc_auc_score(labels, scores)) if both else None,
        "acc_oracle": _percent(best_threshold(labels, scores)[1]) if both else None,
        "acc_calibrated": (None if calibrated_threshold is None or not len(labels)
                           else _percent(((scores > calibrated_threshold) == labels).mean())),
        **{name: None if threshold is None or not both else _percent((scores[fake] > threshold).mean())
           for name, threshold in (operating or dict.fromkeys(FALSE_POSITIVE_RATES)).items()},
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


def ece(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """Expected calibration error: sum over equal-width bins of P(fake) of |bin|/N * |mean label - mean P|."""
    labels, probabilities = np.asarray(labels, np.float64), np.asarray(probabilities, np.float64)
    if not len(labels):
        return None
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)  # P = 1 falls in the last bin
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() / len(labels) * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(total)


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Brier score: mean (P(fake) - y)^2, y = 1 for fake."""
    labels, probabilities = np.asarray(labels, np.float64), np.asarray(probabilities, np.float64)
    return float(np.mean((probabilities - labels) ** 2)) if len(labels) else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _with_published(row: dict, numbers: tuple[float, float | None] | None) -> dict:
    if numbers is None:
        return row
    acc, ap = numbers

    def delta(ours, theirs):
        return None if ours is None or theirs is None else round(ours - theirs, 4)

    return {**row, "published_acc": acc, "published_ap": ap,
            "delta_acc": delta(row["acc"], acc), "delta_ap": delta(row["ap"], ap)}


def _mean(rows: list[dict]) -> dict:
    """Mean of each metric over the test sets that have both classes (one-class controls are apart)."""
    two_class = [row for row in rows if row["n_real"] and row["n_fake"]]
    mean = {}
    for name in METRICS:
        values = [row[name] for row in two_class if row[name] is not None]
        mean[name] = round(float(np.mean(values)), 4) if values else None
    mean["n_sets"] = len(two_class)
    return mean


def report(rows: pd.DataFrame, scores: np.ndarray, predicted: np.ndarray, method: str,
           probabilities: np.ndarray | None = None, thresholds: dict | None = None) -> dict:
    """The metrics file of one method: per test set, their mean, the published numbers beside them.

    `rows` (split, test_set, label) are the scored rows, SCORED_SPLITS only, aligned with `scores`
    and `predicted`: validation rows calibrate the thresholds (thresholds.choose) unless the
    detector's own are given (`thresholds`: a registry detector's, e.g. cross-fitted), test rows are
    measured. `method` names the published table to compare with (a published.DETECTION key, or any
    other name for none). `probabilities` (P(fake), aligned too) add ECE and the Brier score.
    """
    split, labels = rows.split.to_numpy(), rows.label.to_numpy()
    scores, predicted = np.asarray(scores), np.asarray(predicted)
    val_reals = (split == "val") & (labels == 0)
    if thresholds is None:
        thresholds = thresholds_module.choose(labels[split == "val"], scores[split == "val"])
    threshold, calibration = thresholds["calibrated"], thresholds["calibration"]
    operating = {name: thresholds[name] for name in FALSE_POSITIVE_RATES}
    sets = {}
    for name in sorted(rows.test_set[split == "test"].unique()):
        mask = (split == "test") & (rows.test_set == name).to_numpy()
        row = set_metrics(labels[mask], scores[mask], predicted[mask], threshold, operating)
        if probabilities is not None:
            row |= {"ece": _rounded(ece(labels[mask], probabilities[mask])),
                    "brier": _rounded(brier(labels[mask], probabilities[mask]))}
        sets[name] = _with_published(row, published.detection(method, name))
    mean = _mean(list(sets.values()))
    two_class = [row for row in sets.values() if row["n_real"] and row["n_fake"]]
    if probabilities is not None:
        mean |= {name: _rounded(float(np.mean([row[name] for row in two_class]))) if two_class else None
                 for name in CALIBRATION}
    mean["worst_acc"] = min((row["acc"] for row in two_class), default=None)
    mean["worst_acc_calibrated"] = min((row["acc_calibrated"] for row in two_class
                                        if row["acc_calibrated"] is not None), default=None)
    table = published.DETECTION.get(published.MEAN_OVER.get(method, method), {})
    scored = {published.ALIASES.get(name, name) for name in sets}
    if method in published.DETECTION_MEAN and set(table) <= scored:
        mean = _with_published(mean, published.DETECTION_MEAN[method])
    return {
        "method": method,
        "calibrated_threshold": None if threshold is None else round(threshold, 6),
        "calibration": calibration,
        "operating_thresholds": {name: None if t is None else round(t, 6) for name, t in operating.items()},
        "operating_points": (f"true-positive rate at a false-positive rate of 1% and 5%, thresholds chosen on "
                             f"the {int(val_reals.sum())} real images of the clean validation split"
                             if val_reals.any() else "none: the validation split has no real images"),
        "test_sets": sets,
        "mean": mean,
        "warnings": warnings(sets, calibration),
    }


def warnings(sets: dict, calibration: str) -> list[str]:
    """What a reader of the figures must know: no calibrated threshold, or one that calls a whole
    real-only control set fake."""
    found = [] if not calibration.startswith("none") else [f"no calibrated threshold ({calibration})"]
    found += [f"the calibrated threshold calls every image of the real-only set {name} fake"
              for name, row in sets.items() if row["n_real"] and not row["n_fake"] and row["acc_calibrated"] == 0.0]
    return found


def log_warnings(log, name: str, report: dict) -> None:
    """The report's warnings in the stage log."""
    for warning in report["warnings"]:
        log.warning("%s: %s", name, warning)


def _pick(figures: dict, names: tuple[str, ...]) -> dict:
    return {name: figures[name] for name in names if name in figures}


def headline(report: dict, name: str) -> dict:
    """A headline metrics file's entry for one detector's report: {name: its HEADLINE figures}."""
    return {name: {figure: report["mean"].get(figure) for figure in HEADLINE}}


def attribution_headline(report: dict) -> dict:
    """The metrics file of resnet_attribution's report: the ATTRIBUTION_HEADLINE figures of each level
    that ran and of the hierarchy."""
    return {level: _pick(figures, ATTRIBUTION_HEADLINE) for level, figures in report.items()
            if isinstance(figures, dict) and "acc" in figures}
