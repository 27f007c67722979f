"""How a level and the hierarchy are judged: accuracies (in percent, as metrics.set_metrics writes
them), per class, generator and test set, and confusion matrices."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fakedetect.evaluation.metrics import set_metrics


def _acc(truth: np.ndarray, pred: np.ndarray) -> float | None:
    """Accuracy in percent; None for no rows."""
    return round(100.0 * float(np.mean(truth == pred)), 4) if len(truth) else None


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return matrix.tolist()


def _per(rows: pd.DataFrame, column: str) -> dict:
    """Accuracy of the rows' `pred` against `target`, per value of `column`."""
    return {str(name): {"n": len(group), "acc": _acc(group.target.to_numpy(), group.pred.to_numpy())}
            for name, group in rows.groupby(column, sort=True)}


def detection_report(rows: pd.DataFrame, score: np.ndarray, pred: np.ndarray, classes: tuple[str, ...],
                     calibrated_threshold: float | None = None) -> dict:
    """Real vs fake as the detection stages report it (acc, real_acc, fake_acc, AP, acc_calibrated
    at `calibrated_threshold` on the score, ...), overall, per test set and per generator."""
    rows = rows.assign(score=score, pred=pred)
    per_set = {str(name): set_metrics(g.target.to_numpy(), g.score.to_numpy(), g.pred.to_numpy(), calibrated_threshold)
               for name, g in rows.groupby("test_set", sort=True)}
    return {**set_metrics(rows.target.to_numpy(), score, pred, calibrated_threshold), "classes": list(classes),
            "per_test_set": per_set, "per_generator": _per(rows, "generator"),
            "confusion": confusion(rows.target.to_numpy(), pred, 2)}


def multiclass_report(rows: pd.DataFrame, pred: np.ndarray, classes: tuple[str, ...], by: str) -> dict:
    """Accuracy, balanced accuracy, accuracy per true class (`per_<by>`), per generator and per
    test set, and the confusion matrix of a decision among `classes`."""
    rows = rows.assign(pred=pred)
    truth = rows.target.to_numpy()
    per_class = {c: {"n": int((truth == i).sum()), "acc": _acc(truth[truth == i], pred[truth == i])}
                 for i, c in enumerate(classes)}
    present = [c for c, v in per_class.items() if v["acc"] is not None]
    return {"n": len(rows), "classes": list(classes), "acc": _acc(truth, pred),
            "balanced_acc": round(float(np.mean([per_class[c]["acc"] for c in present])), 4) if present else None,
            "balanced_acc_classes": present,  # the classes it averages: those with test rows
            "classes_without_test_rows": [c for c in classes if c not in present],
            f"per_{by}": per_class, "per_generator": _per(rows, "generator"), "per_test_set": _per(rows, "test_set"),
            "confusion": confusion(truth, pred, len(classes))}


def confusion_rows(truth: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per test image (actual, predicted class names): DVC's confusion template."""
    names = np.array(classes)
    return pd.DataFrame({"actual": names[truth], "predicted": names[pred]})


def disabled_confusion(level: str) -> pd.DataFrame:
    """The confusion CSV of a level params turned off: one row saying so, which DVC's confusion
    template draws as a one-cell matrix (a missing file fails to load, an empty one draws an empty canvas)."""
    note = f"{level} off (attribution.{level}.enabled: false)"
    return pd.DataFrame({"actual": [note], "predicted": [note]})
