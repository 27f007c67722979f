"""The format-aligned condition of the compare stage (docs/shortcuts.md "Format-aligned evaluation"): every
fitted detector scores the test images again after one encoding applied to real and fake alike (params
`aligned`: re-saved as JPEG 96 by default), at its own thresholds, beside its clean figures on the same
images. The change is its format reliance: how much of a figure came from the files' format.

The aligned features come from fakedetect.features.views (each image encoded once per condition, ever,
through the feature store); a noise-sensitivity detector's noisy views add its noise after the
re-encoding; a fusion fuses its members' aligned scores.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd

from fakedetect.data import fingerprints, manifests, perturbations
from fakedetect.detectors import registry
from fakedetect.detectors.registry import Inputs
from fakedetect.evaluation import metrics
from fakedetect.params import AlignedParams

log = logging.getLogger("compare")

FIGURES = ("ap", "acc_calibrated", "acc")  # compared clean and aligned, per set and on the mean
# The headline (metrics/format_reliance.json, named as metrics/compare.json's figures so that `dvc metrics
# show` gains a row, not columns): per detector, the change (aligned - clean, in points) of the test set
# whose figure changed for the worse the most: negative when aligning the format cost that much.
HEADLINE = ("ap", "acc_calibrated")

# row positions, optional (sigma, seed) -> the aligned features of those rows (with that noise added), or why none
AlignedSource = Callable[[np.ndarray, "tuple[float, int] | None"], "np.ndarray | str"]


def chosen(rows: pd.DataFrame, p: AlignedParams) -> np.ndarray:
    """The positions of the test rows the condition scores: at most max_per_class of each class per set."""
    test = rows[rows.split == "test"].reset_index(drop=True).assign(position=np.flatnonzero(rows.split == "test"))
    return np.sort(manifests.sample_rows(test, p.max_per_class, p.seed).position.to_numpy())


def _figures(report: dict) -> dict:
    return {"test_sets": {name: {f: row.get(f) for f in ("n_real", "n_fake", *FIGURES)}
                          for name, row in report["test_sets"].items()},
            "mean": {f: report["mean"].get(f) for f in FIGURES}}


def _change(clean, aligned):
    return None if clean is None or aligned is None else round(aligned - clean, 4)


def side_by_side(clean: dict, aligned: dict) -> dict:
    """Per set and on the mean: the clean and the aligned figures and their change (aligned - clean)."""
    clean, aligned = _figures(clean), _figures(aligned)
    sets = {name: {"n_real": row["n_real"], "n_fake": row["n_fake"],
                   "clean": {f: row[f] for f in FIGURES}, "aligned": {f: aligned["test_sets"][name][f] for f in FIGURES},
                   "change": {f: _change(row[f], aligned["test_sets"][name][f]) for f in FIGURES}}
            for name, row in clean["test_sets"].items()}
    mean = {"clean": clean["mean"], "aligned": aligned["mean"],
            "change": {f: _change(clean["mean"][f], aligned["mean"][f]) for f in FIGURES}}
    changes = {figure: [row["change"][figure] for row in sets.values() if row["change"][figure] is not None]
               for figure in HEADLINE}
    return {"test_sets": sets, "mean": mean,
            "format_reliance": {figure: min(found) if found else None for figure, found in changes.items()}}


def run(outcome, rows: pd.DataFrame, layers: list[tuple[str, int]], views: AlignedSource, p: AlignedParams) -> dict:
    """Every fitted detector of `outcome` (compare.run's, with each one's clean scores on the scored rows)
    on the aligned test images: {condition, images, detectors: name -> side_by_side or {skipped}}, or
    {condition, skipped} when the images cannot be read again (imported features)."""
    condition = p.perturbation()
    if condition is None:
        return {"condition": None, "skipped": "aligned.jpeg and aligned.size are null: no aligned condition"}
    named = {"condition": perturbations.name(condition), "as": condition.model_dump(exclude_none=True)}
    test = chosen(rows, p)
    found = views(test, None)
    if isinstance(found, str):
        log.warning("aligned condition skipped: %s", found)
        return {**named, "skipped": found}
    scored_rows = np.flatnonzero(np.isin(rows.split, metrics.SCORED_SPLITS))
    in_scored = np.searchsorted(scored_rows, test)  # the test rows' places among the scored rows
    frame = rows.iloc[test]
    rankings, out = {}, {}
    for name in registry.in_run_order({n: d.spec.kind for n, d in outcome.fitted.items()}):
        detector, where = outcome.fitted[name], f"detectors.{name}"
        spec = detector.spec
        missing = [m for m in registry.members(spec) if m not in rankings]
        noisy = {} if missing else {sigma: views(test, (sigma, seed)) for sigma, seed in registry.noisy_views(spec)}
        why = (f"its members {', '.join(missing)} have no aligned scores" if missing
               else next((v for v in noisy.values() if isinstance(v, str)), None))
        if why:
            out[name] = {"skipped": why}
            continue
        x, view_layers = registry.view(found, layers, spec.features, where)
        inputs = Inputs(x, view_layers, {s: registry.view(v, layers, spec.features, where)[0] for s, v in noisy.items()},
                        {m: rankings[m] for m in registry.members(spec)})
        aligned = detector.score(inputs)
        rankings[name] = aligned.ranking
        clean = outcome.scored[name]
        out[name] = side_by_side(
            metrics.report(frame, clean.ranking[in_scored], clean.decision[in_scored], name,
                           probabilities=clean.p_fake[in_scored], thresholds=detector.thresholds),
            metrics.report(frame, aligned.ranking, aligned.decision, name, probabilities=aligned.p_fake,
                           thresholds=detector.thresholds))
        mean, worst = out[name]["mean"], out[name]["format_reliance"]
        log.info("%s, %s: AP %s%% -> %s%%, calibrated accuracy %s%% -> %s%% (mean over the test sets); the worst "
                 "set's change: AP %s, calibrated accuracy %s points", name, named["condition"], mean["clean"]["ap"],
                 mean["aligned"]["ap"], mean["clean"]["acc_calibrated"], mean["aligned"]["acc_calibrated"],
                 worst["ap"], worst["acc_calibrated"])
    images = frame.groupby(["test_set", "label"]).size()
    return {**named, "images": {f"{s}/{'fake' if label else 'real'}": int(n) for (s, label), n in images.items()},
            "fingerprints": fingerprints.of_sets(frame), "detectors": out}


def headline(result: dict) -> dict:
    """metrics/format_reliance.json: each detector's format reliance (HEADLINE)."""
    return {name: entry["format_reliance"] for name, entry in result.get("detectors", {}).items()
            if "skipped" not in entry}


def table(result: dict) -> pd.DataFrame:
    """The plot's data: per detector, test set and condition (clean, aligned): AP and calibrated accuracy."""
    lines = [{"detector": name, "test_set": test_set, "condition": condition, "ap": row[condition]["ap"],
              "acc_calibrated": row[condition]["acc_calibrated"]}
             for name, entry in result.get("detectors", {}).items() if "skipped" not in entry
             for test_set, row in entry["test_sets"].items() for condition in ("clean", "aligned")]
    return pd.DataFrame(lines, columns=["detector", "test_set", "condition", "ap", "acc_calibrated"])
