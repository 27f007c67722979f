"""The shortcut audit (docs/shortcuts.md "The shortcut audit"): how well the file facts alone, never a
pixel, tell real from fake in each split and test set.

A metadata-only classifier (a scikit-learn random forest on the facts of fakedetect.data.file_facts)
is cross-validated inside each set (stratified, seeded k-fold: its out-of-fold AUC is the set's
`shortcut_auc`), and fitted once on the training split and scored on each test set (`transfer_auc`:
does a format rule learnt in training carry over?). A set whose shortcut AUC reaches the threshold
is flagged, with the facts that separate its classes named and each class described in words.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from fakedetect.data import file_facts, fingerprints

# The facts the classifier sees, each as the audit names it in words. Categorical ones are one-hot.
FACT_NAMES = {"format": "format", "size": "size", "jpeg_quality": "JPEG quality",
              "chroma_subsampling": "chroma subsampling", "progressive": "progressive encoding",
              "exif": "EXIF block", "icc": "ICC profile", "mode": "mode", "bit_depth": "bit depth",
              "bytes_per_pixel": "bytes per pixel"}
CATEGORICAL = ("format", "chroma_subsampling", "mode")
CONTINUOUS = ("bytes_per_pixel",)
HEADLINE = ("shortcut_auc", "flagged")  # metrics/audit.json: short names, as `dvc metrics show` prints one table
SEPARATING = 0.5  # a fact whose classes differ by at least this much (0..1) is named as separating them
TREES = 50


def _values(rows: pd.DataFrame, fact: str) -> pd.Series:
    """One fact of each row, as the separation measure compares it (size as 'WxH')."""
    if fact == "size":
        return rows.width.astype(str) + "x" + rows.height.astype(str)
    if fact == "jpeg_quality":
        return rows.jpeg_quality.fillna(0).astype(int)
    return rows[fact]


def design(rows: pd.DataFrame, facts: list[str], categories: dict[str, list]) -> np.ndarray:
    """The classifier's input: numbers as they are (a missing JPEG quality is 0), categories one-hot."""
    columns = []
    for fact in facts:
        if fact == "size":
            columns += [rows.width.to_numpy(float), rows.height.to_numpy(float)]
        elif fact in CATEGORICAL:
            columns += [(rows[fact] == value).to_numpy(float) for value in categories[fact]]
        else:
            columns.append(_values(rows, fact).to_numpy(float))
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))


def classifier(seed: int) -> RandomForestClassifier:
    """Classes weighted alike in every tree: facts that say nothing give P(fake) 0.5 exactly, whatever the
    class balance of a fold (unweighted, a fold's imbalance alone would push the AUC below 0.5)."""
    return RandomForestClassifier(n_estimators=TREES, class_weight="balanced_subsample", random_state=seed, n_jobs=1)


def cross_validated_auc(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[float | None, str]:
    """(the out-of-fold ROC AUC of a stratified, seeded k-fold, or None; why None). k is at most the
    smaller class's count."""
    smaller = int(min((y == 0).sum(), (y == 1).sum()))
    if smaller < 2:
        return None, "fewer than 2 files in a class"
    out_of_fold = np.zeros(len(y))
    for train, test in StratifiedKFold(min(folds, smaller), shuffle=True, random_state=seed).split(x, y):
        model = classifier(seed).fit(x[train], y[train])
        out_of_fold[test] = model.predict_proba(x[test])[:, 1]
    return round(float(roc_auc_score(y, out_of_fold)), 4), ""


def separation(real: pd.Series, fake: pd.Series, continuous: bool = False) -> float:
    """How far one fact's values differ between the classes, 0 (alike) to 1 (disjoint): the total
    variation distance between their distributions; for a continuous fact (bytes per pixel, whose
    values are all distinct), |2 AUC - 1| of the fact as a score."""
    if continuous:
        values = np.concatenate([real.to_numpy(float), fake.to_numpy(float)])
        auc = roc_auc_score(np.r_[np.zeros(len(real)), np.ones(len(fake))], values)
        return round(float(abs(2 * auc - 1)), 4)
    p, q = real.value_counts(normalize=True), fake.value_counts(normalize=True)
    return round(float(0.5 * p.sub(q, fill_value=0).abs().sum()), 4)


def separating_facts(rows: pd.DataFrame, facts: list[str]) -> list[dict]:
    """The facts whose classes differ by at least SEPARATING, most separating first."""
    real, fake = rows[rows.label == 0], rows[rows.label == 1]
    found = [{"fact": fact, "separation": separation(_values(real, fact), _values(fake, fact),
                                                     continuous=fact in CONTINUOUS)} for fact in facts]
    return sorted((f for f in found if f["separation"] >= SEPARATING), key=lambda f: (-f["separation"], f["fact"]))


def in_words(rows: pd.DataFrame, separating: list[dict]) -> str:
    """'reals: JPEG q95-97 at 224-288 px (short side); fakes: PNG at 256x256 (format 1.00, size 0.67)'."""
    described = "; ".join(f"{name}s: {file_facts.describe_class(rows[rows.label == label])}"
                          for label, name in fingerprints.CLASSES.items())
    named = ", ".join(f"{FACT_NAMES[f['fact']]} {f['separation']:.2f}" for f in separating)
    return f"{described} (separated by {named})" if named else described


def audit(rows: pd.DataFrame, facts: list[str], threshold: float, folds: int, seed: int) -> dict:
    """Per split and test set of `rows` (usable manifest rows joined to their file facts, indexed
    0..n-1): counts, shortcut_auc, transfer_auc (test sets), flagged, the separating facts and the
    words; and the headline (the highest shortcut AUC, the number of flagged sets: shortcut_auc, flagged)."""
    categories = {fact: sorted(rows[fact].unique()) for fact in CATEGORICAL if fact in facts}
    x_all, y_all = design(rows, facts, categories), rows.label.to_numpy()
    train = (rows.split == "train").to_numpy()
    fitted = None
    if len(np.unique(y_all[train])) == 2:
        fitted = classifier(seed).fit(x_all[train], y_all[train])
    sets = {}
    for (split, test_set), group in rows.groupby(["split", "test_set"], sort=True):
        x, y = x_all[group.index], y_all[group.index]
        auc, why = cross_validated_auc(x, y, folds, seed)
        entry = {"real": int((y == 0).sum()), "fake": int((y == 1).sum()), "shortcut_auc": auc}
        if why:
            entry["why_no_auc"] = why
        if split == "test":
            entry["transfer_auc"] = (round(float(roc_auc_score(y, fitted.predict_proba(x)[:, 1])), 4)
                                     if fitted is not None and len(np.unique(y)) == 2 else None)
        entry["flagged"] = auc is not None and auc >= threshold
        entry["separating_facts"] = separating_facts(group, facts) if auc is not None else []
        entry["in_words"] = in_words(group, entry["separating_facts"])
        sets[fingerprints.set_name(split, test_set)] = entry
    rated = [entry["shortcut_auc"] for entry in sets.values() if entry["shortcut_auc"] is not None]
    headline = dict(zip(HEADLINE, (max(rated, default=None), sum(entry["flagged"] for entry in sets.values()))))
    return {"sets": sets, "headline": headline}


def table(sets: dict) -> pd.DataFrame:
    """The plot's data: one row per set and AUC kind (shortcut, transfer) with the set's flag."""
    lines = [{"set": name, "auc": kind, "value": entry.get(f"{kind}_auc"), "flagged": entry["flagged"]}
             for name, entry in sets.items() for kind in ("shortcut", "transfer") if entry.get(f"{kind}_auc") is not None]
    return pd.DataFrame(lines, columns=["set", "auc", "value", "flagged"])
