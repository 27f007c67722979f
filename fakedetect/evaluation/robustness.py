"""Robustness: every classifier the run trained, scored on test sets perturbed by JPEG, blur and
resizing (fakedetect.data.perturbations), beside its clean score, with the same images at every grid point.

The clean point is the run's own features (data/features), so with every test image it equals
nn_eval's and linear_eval's numbers. Thresholds never see a perturbed image: the calibrated
threshold and the operating points (true-positive rate at 1% and 5% false positives) come from
the clean validation split, as a deployed detector would have them.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fakedetect.features import extract
from fakedetect.data import perturbations
from fakedetect.evaluation import metrics
from fakedetect.features.backbones import Backbone
from fakedetect.features.engines import Engine, Item
from fakedetect.features.feature_store import FeatureStore
from fakedetect.detectors.scoring import Scorer
from fakedetect.params import Perturbation, RobustnessParams
from fakedetect.stage import UserError

CLEAN = perturbations.name(None)
# The curves of the plots: the grid points that change only this, by the value of it.
CURVES = {"jpeg": ("jpeg_quality", lambda p: p.jpeg, True), "blur": ("blur_sigma", lambda p: p.blur, False)}
log = logging.getLogger("robustness")


def choose(rows: pd.DataFrame, manifest: pd.DataFrame, p: RobustnessParams) -> pd.DataFrame:
    """The test rows to perturb: of the chosen test sets, at most `max_per_class` real and fake rows
    each (a sample seeded by `seed`, the same at every grid point), with their source `path` and
    `sha256` from the manifest and their row in the feature matrix as `feature_row`."""
    test = rows[rows.split == "test"]
    available = sorted(test.test_set.unique())
    unknown = sorted(set(p.test_sets or []) - set(available))
    if unknown:
        raise UserError(f"robustness.test_sets: no test set {', '.join(map(repr, unknown))} in the run; "
                        f"it has {', '.join(available) or 'none'}")
    test = test[test.test_set.isin(p.test_sets or available)]
    if test.empty:
        raise UserError("robustness: the run has no test rows to perturb")
    parts = []
    for _, group in test.groupby(["test_set", "label"], sort=True):
        if p.max_per_class is not None and len(group) > p.max_per_class:
            order = np.random.default_rng(p.seed).permutation(len(group))[: p.max_per_class]
            group = group.iloc[np.sort(order)]
        parts.append(group)
    chosen = pd.concat(parts).rename_axis("feature_row").reset_index()
    sources = manifest.set_index("id")[["path", "sha256"]]
    return chosen.drop(columns=["path", "sha256"], errors="ignore").join(sources, on="id")  # the manifest's, as ingest read them


@dataclass(frozen=True)
class Perturbed:
    features: dict[str, np.ndarray]  # grid point name -> features of the kept rows of `chosen`
    kept: np.ndarray  # bool per row of `chosen`: its image was usable at every grid point
    skipped: list[dict]  # {path, reason} per unusable source image
    computed: int  # (image, perturbation) pairs encoded in this run


def perturbed_features(chosen: pd.DataFrame, grid: list[Perturbation], encoder: Backbone | Engine,
                       store: FeatureStore, batch_size: int, loader_workers: int) -> Perturbed:
    """Features of every chosen image under every grid point. Each distinct (image, perturbation)
    is encoded at most once per backbone: the feature store keeps it across runs. The engine
    decodes and perturbs in its loaders, as extract_clip's images are decoded."""
    keys = {perturbations.name(point): [perturbations.key(sha, point) for sha in chosen.sha256] for point in grid}
    items = {}
    for point in grid:
        for item_key, path, sha in zip(keys[perturbations.name(point)], chosen.path, chosen.sha256):
            items.setdefault(item_key, Item(path, sha, point))
    log.info("%d images x %d perturbations: %d distinct", chosen.sha256.nunique(), len(grid), len(items))
    encoded = extract.encode_missing(items, encoder, store, batch_size, loader_workers, desc="robustness")
    bad_sources = {items[key].sha256: (items[key].path, reason) for key, reason in encoded.problems.items()}
    kept = ~chosen.sha256.isin(bad_sources).to_numpy()
    features = {name: np.stack([encoded.features[k] for k, keep in zip(point_keys, kept) if keep]).astype(np.float32)
                for name, point_keys in keys.items()} if kept.any() else {}
    skipped = [{"path": path, "reason": reason} for path, reason in sorted(bad_sources.values())]
    return Perturbed(features, kept, skipped, encoded.computed)


def evaluate(scorer: Scorer, matrix: np.ndarray, rows: pd.DataFrame, chosen: pd.DataFrame,
             perturbed: Perturbed) -> dict:
    """One method's report: metrics per grid point under the detector's own thresholds (fitted on the clean
    validation split: those nn_eval, linear_eval and compare report)."""
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS).to_numpy())
    clean_scores, clean_decisions = scorer.score(matrix[scored])  # as nn_eval and linear_eval score
    position = pd.Series(np.arange(len(scored)), index=scored)
    val = np.flatnonzero(rows.split.to_numpy()[scored] == "val")
    kept = chosen[perturbed.kept]
    test = position[kept.feature_row].to_numpy()
    frame = pd.concat([rows.iloc[scored[val]], rows.iloc[scored[test]]])

    def point(scores: np.ndarray, decisions: np.ndarray) -> dict:
        return metrics.report(frame, np.concatenate([clean_scores[val], scores]),
                              np.concatenate([clean_decisions[val], decisions]), scorer.key,
                              thresholds=scorer.thresholds)

    clean = point(clean_scores[test], clean_decisions[test])
    points = {CLEAN: clean}
    if perturbed.features:
        names = list(perturbed.features)
        all_scores, all_decisions = scorer.score(np.concatenate([perturbed.features[n] for n in names]))
        for i, name in enumerate(names):
            part = slice(i * len(kept), (i + 1) * len(kept))
            points[name] = point(all_scores[part], all_decisions[part])
    return {"name": scorer.name,
            **{key: clean[key] for key in ("calibrated_threshold", "calibration", "operating_thresholds",
                                           "operating_points")},
            "perturbations": {name: {"test_sets": r["test_sets"], "mean": r["mean"]} for name, r in points.items()}}


def sample_counts(rows: pd.DataFrame, chosen: pd.DataFrame, perturbed: Perturbed) -> dict:
    """Per test set and class: the images scored at every grid point, and how many the run has."""
    frames = {"scored": chosen[perturbed.kept], "available": rows[rows.split == "test"]}

    def count(frame: pd.DataFrame, test_set: str, label: int) -> int:
        return int(((frame.test_set == test_set) & (frame.label == label)).sum())

    return {test_set: {f"{what}_{cls}": count(frame, test_set, label) for what, frame in frames.items()
                       for cls, label in (("real", 0), ("fake", 1))}
            for test_set in sorted(chosen.test_set.unique())}


def report(methods: dict, rows: pd.DataFrame, chosen: pd.DataFrame, perturbed: Perturbed,
           grid: list[Perturbation]) -> dict:
    """reports/robustness.json: what was perturbed and how, the images, each method's figures."""
    return {
        "protocol": ("each perturbation applied to the original test image (decoded as ingest decodes it), real and "
                     "fake alike, in the order blur, resize (Pillow bicubic, antialiased), JPEG (Pillow); then the "
                     "test protocol (centre crop, the backbone's transform)"),
        "grid": {perturbations.name(point): point.model_dump(exclude_none=True) for point in grid},
        "images": sample_counts(rows, chosen, perturbed),
        "skipped": {"by_reason": dict(sorted(Counter(s["reason"] for s in perturbed.skipped).items())),
                    "files": perturbed.skipped},
        "methods": methods,
    }


def headline(report: dict) -> dict:
    """metrics/robustness.json: per detector, the mean over the grid's points (the clean point left out)
    of the headline figures the eval and compare metrics files hold (metrics.HEADLINE, the same names);
    the report keeps every figure of every point and set."""
    out = {}
    for key, method in report["methods"].items():
        grid = [point["mean"] for name, point in method["perturbations"].items() if name != CLEAN]
        out[key] = {}
        for figure in metrics.HEADLINE:
            values = [m[figure] for m in grid if m.get(figure) is not None]
            out[key][figure] = round(float(np.mean(values)), 4) if values else None
    return out


def curves(method: dict, grid: list[Perturbation]) -> dict[str, pd.DataFrame]:
    """Per curve (jpeg, blur): accuracy and AP of each test set and the mean at the clean point and at
    the grid points that change only that, the clean point first, then by increasing severity."""
    tables = {}
    for curve, (column, value, descending) in CURVES.items():
        alone = [point for point in grid if point.model_dump(exclude_none=True).keys() == {curve}]
        alone.sort(key=value, reverse=descending)
        lines = []
        points = [("clean", None)] + [(f"{value(point):g}", point) for point in alone]
        for label, point in points:
            result = method["perturbations"][perturbations.name(point)]
            for test_set, numbers in [*result["test_sets"].items(), ("mean", result["mean"])]:
                lines.append({column: label, "test_set": test_set, "acc": numbers["acc"], "ap": numbers["ap"]})
        tables[curve] = pd.DataFrame(lines, columns=[column, "test_set", "acc", "ap"])
    return tables
