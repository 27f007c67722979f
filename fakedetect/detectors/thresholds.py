"""A detector's thresholds on its score, chosen on clean validation data only: the calibrated one (the
validation split's most accurate cut) and the operating points (the share of fakes caught when at
most 1% or 5% of real photographs are called fake)."""
from __future__ import annotations

import numpy as np

# Operating points: the share of fakes caught when at most this share of real photographs is called fake.
FALSE_POSITIVE_RATES = {"tpr_at_fpr1": 0.01, "tpr_at_fpr5": 0.05}


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold t whose rule `score > t` is most accurate on these rows, and that accuracy.

    Among equally good cuts the lowest is taken; t lies midway between the scores it separates.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Cut i predicts the i lowest scores real, the rest fake; only cuts between distinct scores count.
    reals_below = np.concatenate([[0], np.cumsum(sorted_labels == 0)])
    fakes_above = (sorted_labels == 1).sum() - np.concatenate([[0], np.cumsum(sorted_labels == 1)])
    valid = np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1], [True]])
    correct = np.where(valid, reals_below + fakes_above, -1)
    cut = int(np.argmax(correct))
    if cut == 0:
        threshold = np.nextafter(sorted_scores[0], -np.inf)
    elif cut == len(scores):
        threshold = sorted_scores[-1]
    else:
        low, high = sorted_scores[cut - 1], sorted_scores[cut]
        threshold = low + (high - low) / 2
        if not low <= threshold < high:
            threshold = low
    return float(threshold), correct[cut] / len(scores)


def threshold_at_fpr(real_scores: np.ndarray, fpr: float) -> float | None:
    """The lowest threshold t whose rule `score > t` calls at most `fpr` of these real images fake
    (None without real images): a moderator's operating point, chosen on reals only."""
    real_scores = np.sort(np.asarray(real_scores, dtype=np.float64))
    if not len(real_scores):
        return None
    allowed = min(int(np.floor(fpr * len(real_scores) + 1e-9)), len(real_scores) - 1)  # reals that may score above t
    return float(real_scores[len(real_scores) - 1 - allowed])


def operating_thresholds(real_scores: np.ndarray) -> dict[str, float | None]:
    """The threshold of each FALSE_POSITIVE_RATES operating point on these real images' scores."""
    return {name: threshold_at_fpr(real_scores, fpr) for name, fpr in FALSE_POSITIVE_RATES.items()}


def calibrate(labels: np.ndarray, scores: np.ndarray) -> tuple[float | None, str]:
    """The validation split's best threshold, or None and why not: no validation split, one class
    on it, or no separation (its most accurate cut calls every validation image fake, or every one real)."""
    labels = np.asarray(labels)
    if not len(labels):
        return None, "none: no validation split"
    if len(np.unique(labels)) < 2:
        return None, "none: the validation split has one class"
    threshold, _ = best_threshold(labels, scores)
    called_fake = np.asarray(scores, np.float64) > threshold
    if called_fake.all() or not called_fake.any():
        return None, (f"none: no separation on the validation split (its most accurate cut calls every image "
                      f"{'fake' if called_fake.all() else 'real'})")
    return threshold, "validation split"


def choose(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Every threshold of a detector, from its scores on the clean validation split (labels 0/1): the
    calibrated one (None where it cannot be, `calibration` says why) and each operating point's. The
    one place thresholds are decided: the registry, the eval stages' reports and robustness call it."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    calibrated, how = calibrate(labels, scores)
    return {"calibrated": calibrated, "calibration": how, **operating_thresholds(scores[labels == 0])}
