"""Metrics against direct scikit-learn computations, thresholds, one-class sets, published numbers."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, recall_score, roc_auc_score

from fakedetect.detectors import thresholds
from fakedetect.evaluation import metrics, published
from fakedetect.stage import UserError

# A hand-made test set: 5 real, 7 fake, scores with a tie across classes and errors on both sides.
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.3, 0.6, 0.2, 0.45, 0.9, 0.45, 0.8, 0.4, 0.7, 0.95, 0.55])
PREDICTED = (SCORES > 0.5).astype(int)


def brute_force_best_accuracy(labels, scores):
    candidates = np.concatenate([[-np.inf], np.unique(scores)])
    return max(accuracy_score(labels, scores > t) for t in candidates)


@pytest.mark.fast
def test_every_metric_matches_scikit_learn():
    row = metrics.set_metrics(LABELS, SCORES, PREDICTED, calibrated_threshold=0.42)
    assert row["acc"] == pytest.approx(100 * accuracy_score(LABELS, PREDICTED), abs=1e-4)
    assert row["real_acc"] == pytest.approx(100 * recall_score(LABELS, PREDICTED, pos_label=0), abs=1e-4)
    assert row["fake_acc"] == pytest.approx(100 * recall_score(LABELS, PREDICTED, pos_label=1), abs=1e-4)
    assert row["ap"] == pytest.approx(100 * average_precision_score(LABELS, SCORES), abs=1e-4)
    assert row["auc"] == pytest.approx(100 * roc_auc_score(LABELS, SCORES), abs=1e-4)
    assert row["acc_oracle"] == pytest.approx(100 * brute_force_best_accuracy(LABELS, SCORES), abs=1e-4)
    assert row["acc_calibrated"] == pytest.approx(100 * accuracy_score(LABELS, SCORES > 0.42), abs=1e-4)
    assert (row["n_real"], row["n_fake"]) == (5, 7)
    # The hand-made numbers, so that the test also pins the definitions.
    assert (row["acc"], row["real_acc"], row["fake_acc"]) == (75.0, 80.0, 71.4286)


@pytest.mark.fast
def test_oracle_threshold_separates_a_separable_case():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.05, 0.2, 0.31, 0.6, 0.61, 0.9])
    threshold, accuracy = thresholds.best_threshold(labels, scores)
    assert accuracy == 1.0
    assert threshold == pytest.approx((0.31 + 0.6) / 2)
    assert metrics.set_metrics(labels, scores, scores > 0.95)["acc_oracle"] == 100.0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.fast
def test_best_threshold_is_the_best_cut_and_reproduces_its_accuracy(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: many ties
    threshold, accuracy = thresholds.best_threshold(labels, scores)
    assert accuracy == pytest.approx(brute_force_best_accuracy(labels, scores))
    assert accuracy_score(labels, scores > threshold) == pytest.approx(accuracy)


@pytest.mark.fast
def test_extreme_cuts_all_fake_and_all_real():
    threshold, accuracy = thresholds.best_threshold(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]))
    assert accuracy == pytest.approx(2 / 3) and threshold < 0.1  # everything called fake
    threshold, accuracy = thresholds.best_threshold(np.array([0, 0, 1]), np.array([0.5, 0.6, 0.4]))
    assert accuracy == pytest.approx(2 / 3) and threshold >= 0.6  # everything called real


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.fast
def test_one_class_set_is_scored_by_its_accuracy_and_the_rest_is_null(label):
    labels = np.full(4, label)
    scores = np.array([0.2, 0.7, 0.4, 0.9])
    row = metrics.set_metrics(labels, scores, (scores > 0.5).astype(int), calibrated_threshold=0.3)
    assert row["acc"] == 50.0
    assert row["real_acc" if label == 0 else "fake_acc"] == 50.0
    assert row["fake_acc" if label == 0 else "real_acc"] is None
    assert row["ap"] is None and row["auc"] is None and row["acc_oracle"] is None
    assert row["acc_calibrated"] == (25.0 if label == 0 else 75.0)
    json.dumps(row, allow_nan=False)


def _rows(names_and_labels, val_labels=()):
    """Scored rows: validation rows first, then the test sets."""
    val = [{"split": "val", "test_set": "", "label": label} for label in val_labels]
    return pd.DataFrame(val + [{"split": "test", "test_set": name, "label": label}
                               for name, labels in names_and_labels for label in labels])


@pytest.mark.fast
def test_report_puts_published_numbers_only_beside_the_method_that_published_them():
    rows = _rows([("cyclegan", [0, 1, 0, 1]), ("seeingdark", [0, 1, 0, 1]), ("mine", [0, 0, 1, 1]),
                  ("real_blur", [0, 0])], val_labels=[0, 1, 0, 1])
    scores = np.array([0.1, 0.35, 0.3, 0.8,  # validation
                       0.2, 0.9, 0.4, 0.8, 0.6, 0.7, 0.1, 0.3, 0.2, 0.4, 0.6, 0.9, 0.1, 0.7])
    predicted = (scores > 0.5).astype(int)
    univfd = metrics.report(rows, scores, predicted, "univfd_linear_probe")
    cyclegan = univfd["test_sets"]["cyclegan"]
    assert (cyclegan["published_acc"], cyclegan["published_ap"]) == (98.5, 99.46)
    assert cyclegan["delta_acc"] == pytest.approx(cyclegan["acc"] - 98.5)
    assert univfd["test_sets"]["seeingdark"]["published_acc"] == 63.0  # SITD under CNNDetection's folder name
    assert "published_acc" not in univfd["test_sets"]["mine"]
    assert "published_acc" not in univfd["mean"]  # the published mean needs all 19 sets
    # The notebook published no FCNN number for UnivFD's cyclegan set, only for its own test file.
    fcnn = metrics.report(rows, scores, predicted, "notebook_fcnn")
    assert all("published_acc" not in row for row in fcnn["test_sets"].values())
    # Mean over the two-class sets; the real-only control is reported on its own.
    assert univfd["mean"]["n_sets"] == 3
    assert univfd["mean"]["acc"] == pytest.approx(np.mean([univfd["test_sets"][s]["acc"]
                                                           for s in ("cyclegan", "seeingdark", "mine")]), abs=1e-3)
    assert univfd["test_sets"]["real_blur"]["acc"] == 50.0
    # Calibrated on the validation rows: threshold between 0.3 and 0.35.
    assert 0.3 <= univfd["calibrated_threshold"] < 0.35 and univfd["calibration"] == "validation split"
    json.dumps(univfd, allow_nan=False)


@pytest.mark.fast
def test_published_mean_appears_when_all_nineteen_sets_are_scored():
    names = list(published.DETECTION["univfd_linear_probe"])
    rows = _rows([(name, [0, 1]) for name in names])
    scores = np.tile([0.2, 0.9], len(names))
    report = metrics.report(rows, scores, (scores > 0.5).astype(int), "univfd_linear_probe")
    assert report["mean"]["published_acc"] == 81.38 and report["mean"]["delta_acc"] == pytest.approx(18.62)
    assert report["calibrated_threshold"] is None and report["calibration"] == "none: no validation split"
    assert len(names) == 19


def direct_tpr_at_fpr(real_scores, fake_scores, fpr):
    """Straight from the definition: of the thresholds that call at most `fpr` of the reals fake
    (rule score > t), the lowest; then the share of fakes above it."""
    candidates = sorted({-np.inf, *real_scores})
    t = min(t for t in candidates if np.mean(np.asarray(real_scores) > t) <= fpr)
    return 100 * np.mean(np.asarray(fake_scores) > t)


@pytest.mark.fast
def test_tpr_at_fpr_on_a_hand_made_case():
    val_reals = np.arange(100) / 100  # 0.00 .. 0.99: one real above 0.98, five above 0.94
    assert thresholds.threshold_at_fpr(val_reals, 0.01) == 0.98
    assert thresholds.threshold_at_fpr(val_reals, 0.05) == 0.94
    fakes = np.array([0.995, 0.97, 0.95, 0.94, 0.5])  # 0.94 is not above 0.94
    test_reals = np.array([0.1, 0.99, 0.2])
    rows = pd.DataFrame({"split": ["val"] * 100 + ["test"] * 8 + ["test"] * 2,
                         "test_set": [""] * 100 + ["gan"] * 8 + ["fakes_only"] * 2,
                         "label": [0] * 100 + [1] * 5 + [0] * 3 + [1] * 2})
    scores = np.concatenate([val_reals, fakes, test_reals, [0.999, 0.1]])
    report = metrics.report(rows, scores, (scores > 0.5).astype(int), "any")
    gan = report["test_sets"]["gan"]
    assert gan["tpr_at_fpr1"] == pytest.approx(direct_tpr_at_fpr(val_reals, fakes, 0.01)) == 20.0
    assert gan["tpr_at_fpr5"] == pytest.approx(direct_tpr_at_fpr(val_reals, fakes, 0.05)) == 60.0
    assert report["operating_thresholds"] == {"tpr_at_fpr1": 0.98, "tpr_at_fpr5": 0.94}
    assert "100 real images of the clean validation split" in report["operating_points"]
    assert report["test_sets"]["fakes_only"]["tpr_at_fpr1"] is None  # a set without reals: null
    rng = np.random.default_rng(0)
    for n in (7, 50, 333):
        reals, fake = rng.normal(size=n), rng.normal(1, size=40)
        t = thresholds.threshold_at_fpr(reals, 0.05)
        assert 100 * np.mean(fake > t) == pytest.approx(direct_tpr_at_fpr(reals, fake, 0.05))


@pytest.mark.fast
def test_no_validation_reals_gives_null_operating_points():
    rows = pd.DataFrame({"split": ["val", "test", "test"], "test_set": ["", "s", "s"], "label": [1, 0, 1]})
    report = metrics.report(rows, np.array([0.9, 0.2, 0.8]), np.array([1, 0, 1]), "any")
    assert report["operating_thresholds"] == {"tpr_at_fpr1": None, "tpr_at_fpr5": None}
    assert report["test_sets"]["s"]["tpr_at_fpr5"] is None and report["test_sets"]["s"]["acc"] == 100.0


@pytest.mark.fast
def test_headline_holds_the_detectors_few_figures_of_the_mean():
    rows = _rows([("progan", [0, 1, 0, 1]), ("real_blur", [0, 0])])
    scores = np.array([0.2, 0.9, 0.6, 0.7, 0.1, 0.8])
    report = metrics.report(rows, scores, (scores > 0.5).astype(int), "univfd_linear_probe")
    # _rows has no validation split: no calibrated threshold, no operating points, and the report says so
    assert metrics.headline(report, "probe") == {"probe": {"ap": 100.0, "acc_calibrated": None, "tpr_at_fpr5": None}}
    assert report["warnings"] == ["no calibrated threshold (none: no validation split)"]


@pytest.mark.fast
def test_a_threshold_calling_a_real_only_control_fake_is_warned_about_and_no_separation_is_refused():
    rows = pd.DataFrame({"split": ["val"] * 4 + ["test"] * 2, "test_set": [""] * 4 + ["real_blur"] * 2,
                         "label": [0, 1, 0, 1, 0, 0]})
    report = metrics.report(rows, np.array([0.1, 0.9, 0.2, 0.8, 0.95, 0.97]), np.zeros(6, int), "any")
    assert report["test_sets"]["real_blur"]["acc_calibrated"] == 0.0
    assert report["warnings"] == ["the calibrated threshold calls every image of the real-only set real_blur fake"]
    useless = metrics.report(rows, np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5]), np.zeros(6, int), "any")
    assert useless["calibrated_threshold"] is None and useless["calibration"].startswith("none: no separation")
