"""The protocols stage's work: every configured detector fitted on each fold's training side and judged
on its held-out side (leave one generator out; chronological windows), from the stored features
alone (docs/protocols.md). The folds come from fakedetect.evaluation.folds; the fitting, scoring and
thresholds are the compare stage's, through one adapter (`fit_and_score`)."""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd

from fakedetect.data import generator_dates
from fakedetect.evaluation import compare, folds
from fakedetect.evaluation.folds import CHRONOLOGICAL, LOGO, NEXT, Fold
from fakedetect.params import DetectorSpec

log = logging.getLogger("protocols")

# Per fold, detector and held-out set (reports/protocols.json); the threshold-free AP and AUC, and the
# accuracy and TPRs at the thresholds the fold's detector chose on its own validation rows.
FIGURES = ("ap", "auc", "acc_calibrated", "tpr_at_fpr1", "tpr_at_fpr5")


def fit_and_score(matrix: np.ndarray, rows: pd.DataFrame, layers, detectors: dict[str, DetectorSpec],
                  noisy: compare.NoisySource) -> tuple[dict[str, dict], dict[str, str]]:
    """The one place the protocols meet the detector registry: every detector fitted on the rows of split
    `train` (and `val`: thresholds, fusions) and scored on the `test` rows exactly as the compare stage
    does -> (detector -> test set -> FIGURES and its calibrated threshold, detector -> why it was skipped)."""
    compare_log, level = logging.getLogger("compare"), logging.getLogger("compare").level
    compare_log.setLevel(logging.WARNING)  # its lines speak of the compare stage's test sets and default
    try:
        outcome = compare.run(matrix, rows, layers, detectors, noisy)
    finally:
        compare_log.setLevel(level)
    found = {}
    for name, entry in outcome.reports.items():
        threshold = entry["thresholds"]["calibrated"]
        found[name] = {test_set: {figure: row[figure] for figure in FIGURES} | {"threshold": threshold}
                       for test_set, row in entry["report"]["test_sets"].items()}
    return found, outcome.skipped


def fold_rows(rows: pd.DataFrame, fold: Fold) -> tuple[np.ndarray, pd.DataFrame]:
    """The fold as the compare stage reads rows: (indices into the stored rows, the rows relabelled with
    split train / val / test and the held-out set as test_set; a row of two sets appears twice)."""
    parts = [(fold.train, "train", ""), (fold.val, "val", "")] + [(i, "test", n) for n, i in fold.test.items()]
    index = np.concatenate([part for part, _, _ in parts]).astype(np.int64)
    relabelled = rows.iloc[index].reset_index(drop=True).assign(
        split=np.concatenate([[s] * len(p) for p, s, _ in parts]),
        test_set=np.concatenate([[n] * len(p) for p, _, n in parts]))
    return index, relabelled


def build_folds(rows: pd.DataFrame, params, demo: bool) -> tuple[list[Fold], dict]:
    """The folds params.protocols asks for (params: evaluation), and what ordered the windows."""
    pairs, photos = folds.pairing(rows), folds.photographs(rows, demo)
    found, about = [], {}
    if LOGO in params.protocols:
        found += folds.leave_one_generator_out(rows, pairs, photos, params)
    if CHRONOLOGICAL in params.protocols:
        found += folds.chronological(rows, pairs, photos, params)
        windows, undated = folds.windows(rows, params)
        about = {"windows": windows, "undated": undated,
                 "dates": {g: dict(zip(("date", "source"), generator_dates.date_of(g, params.generator_dates)))
                           for window in windows for g in window}}
        if undated:
            log.warning("chronological: no date for %s, left out (add one in evaluation.generator_dates)",
                        ", ".join(undated))
    return found, about


def run(matrix: np.ndarray, rows: pd.DataFrame, layers, detectors: dict[str, DetectorSpec],
        noisy: compare.NoisySource, params, demo: bool, models=None,
        progress: Callable[[Fold], None] = lambda fold: None) -> dict:
    """reports/protocols.json: every fold of every protocol asked for, fitted and judged
    (`noisy(sigma, seed, row_indices)` gives noisy features of stored rows, as for the compare stage),
    and predict's default chosen among the compare stage's detectors saved in `models` (`choose`)."""
    found, about = build_folds(rows, params, demo)
    report = {"protocols": list(params.protocols), "chronological": about, "folds": []}
    for fold in found:
        entry = {"protocol": fold.protocol, "fold": fold.name, "training_generators": fold.training,
                 "held_out": fold.held_out, "photographs": fold.photographs, "counts": folds.counts(rows, fold)}
        if fold.skipped:
            log.warning("%s fold %s skipped: %s", fold.protocol, fold.name, fold.skipped)
            report["folds"].append(entry | {"skipped": fold.skipped})
            continue
        index, relabelled = fold_rows(rows, fold)
        figures, skipped = fit_and_score(matrix[index], relabelled, layers, detectors,
                                         lambda sigma, seed, at: noisy(sigma, seed, index[at]))
        report["folds"].append(entry | {"detectors": figures, "skipped_detectors": skipped})
        log.info("%s fold %s: held-out AP %s", fold.protocol, fold.name, ", ".join(
            f"{name} {sets[next(iter(fold.test))]['ap']}" for name, sets in figures.items()))
        progress(fold)
    report["choice"] = choose(report, found, rows, matrix, layers, models) if models is not None else None
    return report


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 2) if values else None


def held_out(report: dict, detector: str, protocol: str, test_set: str | None = None) -> list[float | None]:
    """A detector's held-out AP on each fold of a protocol that ran (chronological: on `test_set`)."""
    return [fold["detectors"][detector][test_set or fold["fold"]]["ap"] for fold in report["folds"]
            if fold["protocol"] == protocol and detector in fold.get("detectors", {})]


def headline(report: dict) -> dict[str, dict]:
    """The metrics files (metrics.HEADLINE's names, so that `dvc metrics show` adds rows, not columns: each
    detector's `ap`): `mean` and `worst`, the mean and the worst held-out AP over the leave-one-generator-out
    folds, and `next`, the mean AP on the next window over the chronological folds; one figure per
    detector in each, empty where that protocol did not run."""
    names = sorted({name for fold in report["folds"] for name in fold.get("detectors", {})})
    found = {"mean": {}, "worst": {}, "next": {}}
    for name in names:
        logo, next_window = held_out(report, name, LOGO), held_out(report, name, CHRONOLOGICAL, NEXT)
        if logo:
            worst = min((v for v in logo if v is not None), default=None)
            found["mean"][name] = {"ap": _mean(logo)}
            found["worst"][name] = {"ap": None if worst is None else round(worst, 2)}
        if next_window:
            found["next"][name] = {"ap": _mean(next_window)}
    return found


def tables(report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plots' data: (detector x held-out generator: calibrated accuracy and AP; detector x window: AUC
    on the next window and on every later one)."""
    cells, lines = [], []
    for fold in report["folds"]:
        for name, sets in fold.get("detectors", {}).items():
            if fold["protocol"] == LOGO:
                row = sets[fold["fold"]]
                cells.append({"detector": name, "held_out": fold["fold"], "acc_calibrated": row["acc_calibrated"],
                              "ap": row["ap"]})
            else:
                lines += [{"detector": name, "window": int(fold["fold"].removeprefix("window")), "set": test_set,
                           "auc": row["auc"]} for test_set, row in sets.items()]
    return (pd.DataFrame(cells, columns=["detector", "held_out", "acc_calibrated", "ap"]),
            pd.DataFrame(lines, columns=["detector", "window", "set", "auc"]))


def choose(report: dict, found: list[Fold], rows: pd.DataFrame, matrix: np.ndarray, layers, models) -> dict | None:
    """predict's default when a protocol ran: among the saved detectors of the compare stage (`models`)
    that predict can run, the one with the best mean held-out AP (leave one generator out, else the
    next window), and its threshold calibrated on the folds' held-out calibration rows of generators
    the saved detector never trained on; None when no protocol judged a runnable detector."""
    from fakedetect.detectors import registry, thresholds

    protocol = LOGO if any(f["protocol"] == LOGO and "detectors" in f for f in report["folds"]) else CHRONOLOGICAL
    saved = registry.saved(models)
    means = {name: figures["ap"] for name, figures in headline(report)["mean" if protocol == LOGO else "next"].items()
             if name in saved and not registry.needs_noisy_views(name, saved) and figures["ap"] is not None}
    if not means:
        return None
    best = max(sorted(means), key=lambda name: means[name])
    pairs = folds.pairing(rows)
    seen = set(rows.generator[(rows.label == 1) & rows.split.isin(["train", "val"])])  # what compare fitted on
    calibration = sorted({i for f in found if f.protocol == protocol and not f.skipped for i in f.calibration
                          if not pairs[i] & seen and rows.split.iat[i] == "test"})
    labels = rows.label.to_numpy()[calibration]
    _, score = registry.score_function(models, best, layers)
    chosen = thresholds.choose(labels, score(matrix[calibration]).ranking if calibration else np.empty(0))
    rounded = {k: None if t is None else round(t, 6) for k, t in chosen.items() if k != "calibration"}
    return {"detector": best, "protocol": protocol, "held_out_ap": means[best], "held_out_aps": means,
            "threshold": rounded.pop("calibrated"), "operating_thresholds": rounded,
            "calibration": (f"{int((labels == 0).sum())} real and {int((labels == 1).sum())} fake held-out rows of "
                            f"generators the saved detector never trained on" if chosen["calibrated"] is not None
                            else f"{chosen['calibration']} (held-out rows of generators it never trained on); "
                                 "the detector's own calibrated threshold applies")}
