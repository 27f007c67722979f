"""The detector registry: a configured detector (params `detectors`: name -> {kind, features,
params}) is fitted on the training and validation features, scores features as P(fake) and a
ranking score, carries its thresholds, and saves and loads itself (docs/detectors.md "Adding a detector").

A kind is one class (fakedetect.detectors.kind.Kind) with one entry in KINDS, or any class named
`module:Class` in params; everything kind-specific (its params, run order, noisy views, members,
published table, how its validation figures are got) is declared by the class and read from here.

Saved detectors hold json and npz files read without unpickling (`allow_pickle=False`), and Keras
heads in `.keras` files loaded with safe_mode.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.metrics import average_precision_score

from fakedetect import atomic
from fakedetect.detectors import thresholds as thresholds_module
from fakedetect.params import DetectorSpec
from fakedetect.stage import UserError

# kind -> its class, "module under fakedetect.detectors:Class": one entry per built-in kind.
KINDS = {"knn": "basic:Knn", "fcnn": "basic:Fcnn", "linear_probe": "basic:LinearProbe",
         "external_head": "basic:ExternalHead", "fusion": "basic:Fusion", "blocks": "blocks:Blocks",
         "noise_sensitivity": "noise_sensitivity:NoiseSensitivity"}
DETAILS, ARRAYS = "detector.json", "arrays.npz"
# Cross-fitting of the kinds that fit on the validation split: seeded, stratified folds of it.
CROSS_FIT_FOLDS, CROSS_FIT_SEED = 5, 0
log = logging.getLogger("registry")


def kind_class(kind: str):
    """The class of a kind (its module imported now: blocks imports torch); `module:Class` names a
    kind outside the package."""
    from fakedetect.detectors import basic, blocks, noise_sensitivity  # named here so dvc.yaml's deps list them

    if kind in KINDS:
        module, name = KINDS[kind].split(":")
        return getattr({"basic": basic, "blocks": blocks, "noise_sensitivity": noise_sensitivity}[module], name)
    module, _, name = kind.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"detector kind {kind!r}: {exc}") from None


@dataclass(frozen=True)
class Source:
    """Where a view's rows are on disk: a feature folder, its row numbers, the view's columns."""

    folder: str
    rows: np.ndarray
    columns: tuple[int, int]


@dataclass
class Inputs:
    """What a detector reads for some rows: its view of the features, and what some kinds need more."""

    x: np.ndarray  # the view's columns (float32)
    layers: list[tuple[str, int]]  # the (name, width) of each slice of x, in order
    noisy: dict[float, np.ndarray] = field(default_factory=dict)  # sigma -> the same view of the noisy images
    members: dict[str, np.ndarray] = field(default_factory=dict)  # its members' ranking scores
    source: Source | None = None  # the rows on disk (a k-NN bank refers to them instead of copying them)

    def take(self, rows: np.ndarray) -> Inputs:
        """The same inputs for some of the rows."""
        return Inputs(self.x[rows], self.layers, {s: v[rows] for s, v in self.noisy.items()},
                      {m: v[rows] for m, v in self.members.items()},
                      None if self.source is None else replace(self.source, rows=self.source.rows[rows]))


def columns(layers: list[tuple[str, int]], features: str, where: str) -> tuple[tuple[int, int], list]:
    """The column range a `features` spec names (all | layer:<name> | layers) and its slices; a
    UserError naming `where` when the features have no such layer."""
    if features in ("all", "layers"):
        return (0, sum(width for _, width in layers)), list(layers)
    name = features.split(":", 1)[1]
    start = 0
    for layer, width in layers:
        if layer == name:
            return (start, start + width), [(layer, width)]
        start += width
    raise UserError(f"{where}: the features have no layer {name!r} (they have {', '.join(n for n, _ in layers)})")


def view(matrix: np.ndarray, layers: list[tuple[str, int]], features: str, where: str) -> tuple[np.ndarray, list]:
    """The columns a `features` spec names, and their slices."""
    (start, stop), found = columns(layers, features, where)
    return (matrix if (start, stop) == (0, matrix.shape[1]) else matrix[:, start:stop]), found


def inputs(matrix: np.ndarray, layers: list[tuple[str, int]], spec: DetectorSpec, rows: np.ndarray, where: str,
           folder: str | os.PathLike | None = None) -> Inputs:
    """A detector's view of some rows of a feature matrix (`folder`: the feature folder it was read from)."""
    span, found = columns(layers, spec.features, where)
    x = view(matrix, layers, spec.features, where)[0][rows]
    return Inputs(x, found, source=None if folder is None else Source(str(folder), np.asarray(rows), span))


def needs(spec: DetectorSpec, layers: list[tuple[str, int]]) -> str | None:
    """Why a detector cannot run on features with these slices (None if it can)."""
    if spec.features == "layers" and len(layers) < 2:
        return f"it reads per-block features (features: layers), and the features have one slice ({layers[0][0]})"
    if spec.features.startswith("layer:") and spec.features[6:] not in {name for name, _ in layers}:
        return f"the features have no layer {spec.features[6:]!r}"
    return None


def members(spec: DetectorSpec) -> list[str]:
    """The detectors whose scores a detector reads (a fusion's members)."""
    return kind_class(spec.kind).members(spec.settings)


def with_members(spec: DetectorSpec, found: list[str]) -> DetectorSpec:
    """The detector reading only these of its members (those that ran)."""
    return spec.model_copy(update={"params": kind_class(spec.kind).with_members(spec.params, found)})


def published_as(spec: DetectorSpec) -> str | None:
    """The one published-figure mapping: the table (fakedetect.evaluation.published) a detector's
    figures stand beside, or None."""
    return kind_class(spec.kind).published_as(spec.settings)


@dataclass
class Scored:
    p_fake: np.ndarray  # P(fake) per row
    ranking: np.ndarray  # the score AP, ROC and the thresholds use (P(fake) itself where it is fine-grained)
    own: np.ndarray | None = None  # the kind's own decision where it has one (the k-NN vote)

    @property
    def decision(self) -> np.ndarray:  # the detector's own decision: else fake when P(fake) > 0.5
        return (self.p_fake > 0.5).astype(np.int64) if self.own is None else np.asarray(self.own, np.int64)


@dataclass
class FittedDetector:
    name: str
    spec: DetectorSpec
    model: object  # an instance of its kind's class
    thresholds: dict = field(default_factory=dict)
    # its AP (%) on the validation split and how that figure was got: predict's default choice
    validation: dict = field(default_factory=dict)

    def score(self, inputs: Inputs) -> Scored:
        p_fake, ranking, *own = self.model.predict(inputs)
        return Scored(np.asarray(p_fake, np.float64), np.asarray(ranking, np.float64), own[0] if own else None)

    def calibrate(self, y_val: np.ndarray, ranking: np.ndarray, how: str) -> None:
        """Its thresholds (thresholds.choose) and validation AP from its ranking scores on the
        validation split; `how` says whether those scores are out-of-sample."""
        y_val = np.asarray(y_val)
        both = bool((y_val == 0).any() and (y_val == 1).any())
        self.thresholds = {"p_fake": 0.5, **thresholds_module.choose(y_val, ranking)}
        self.validation = {"ap": round(100 * float(average_precision_score(y_val, ranking)), 4) if both else None,
                           "how": how}

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "save_files"):  # what npz cannot hold: a Keras head, where a bank is
            self.model.save_files(folder)
        with atomic.atomic_path(folder / ARRAYS) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **self.model.state())
        atomic.write_json(folder / DETAILS, {"name": self.name, "kind": self.spec.kind, "features": self.spec.features,
                                             "params": self.spec.params, "thresholds": self.thresholds,
                                             "validation": self.validation})


def build(name: str, spec: DetectorSpec):
    """A new, unfitted instance of the detector's kind."""
    return kind_class(spec.kind)(spec.settings, name)


def cannot_fit(spec: DetectorSpec, y_train: np.ndarray, y_val: np.ndarray) -> str | None:
    """Why the detector cannot be fitted on splits with these labels (None: it can)."""
    return kind_class(spec.kind).cannot_fit(spec.settings, np.asarray(y_train), np.asarray(y_val))


def fit(name: str, spec: DetectorSpec, train: Inputs, y_train: np.ndarray, val: Inputs,
        y_val: np.ndarray, **options) -> FittedDetector:
    """The detector fitted and calibrated (`options` go to its kind's fit, e.g. a Keras head's callbacks).
    A kind that fits on the validation split is calibrated on cross-fitted validation scores."""
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    why = cannot_fit(spec, y_train, y_val)
    if why:
        raise UserError(f"detectors.{name}: {why}")
    model = build(name, spec)
    model.fit(train, y_train, val, y_val, **options)
    detector = FittedDetector(name, spec, model)
    if type(model).fits_on_validation:
        ranking, how = cross_fitted(name, spec, train, y_train, val, y_val)
        if ranking is None:
            ranking = detector.score(val).ranking if len(y_val) else np.empty(0)
    else:
        ranking = detector.score(val).ranking if len(y_val) else np.empty(0)
        how = f"in-sample: {type(model).in_sample}" if type(model).in_sample else "held out: fitted on the training split"
    detector.calibrate(y_val, ranking, how)
    return detector


def adopt(name: str, spec: DetectorSpec, model, val: Inputs, y_val: np.ndarray) -> FittedDetector:
    """A detector from a model fitted elsewhere (linear_train's head), calibrated on the validation split."""
    detector = FittedDetector(name, spec, model)
    ranking = detector.score(val).ranking if len(y_val) else np.empty(0)
    how = f"in-sample: {type(model).in_sample}" if type(model).in_sample else "held out: fitted on the training split"
    detector.calibrate(np.asarray(y_val), ranking, how)
    return detector


def cross_fitted(name: str, spec: DetectorSpec, train: Inputs, y_train: np.ndarray, val: Inputs,
                 y_val: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Out-of-fold validation scores: each of CROSS_FIT_FOLDS seeded, stratified folds of the validation
    split scored by the kind fitted on the other folds; (None, why) when a class has too few rows."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y_val, minlength=2) if len(y_val) else np.zeros(2, int)
    folds = min(CROSS_FIT_FOLDS, int(counts.min()))
    if folds < 2:
        return None, "in-sample: too few validation rows of each class to cross-fit"
    ranking = np.empty(len(y_val))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=CROSS_FIT_SEED)
    for fit_rows, held_out in splitter.split(np.zeros(len(y_val)), y_val):
        model = build(name, spec)
        model.fit(train, y_train, val.take(fit_rows), y_val[fit_rows])
        ranking[held_out] = FittedDetector(name, spec, model).score(val.take(held_out)).ranking
    return ranking, f"cross-fitted: {folds} seeded folds of the validation split"


def load(folder: str | os.PathLike) -> FittedDetector:
    """A detector saved by FittedDetector.save (no pickle: json, npz, a safe-mode .keras file)."""
    folder = Path(folder)
    try:
        details = json.loads((folder / DETAILS).read_text())
        with np.load(folder / ARRAYS, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename} is missing: run the compare stage (dvc repro compare)") from None
    spec = DetectorSpec(kind=details["kind"], features=details["features"], params=details["params"])
    model = build(details["name"], spec)
    model.restore(arrays, folder)
    return FittedDetector(details["name"], spec, model, details["thresholds"], details.get("validation", {}))


def in_run_order(kinds: dict[str, str]) -> list[str]:
    """Detector names (name -> kind) in their kinds' order: torch-side kinds before Keras ones,
    those reading other detectors' scores last."""
    return sorted(kinds, key=lambda name: kind_class(kinds[name]).order)


def noisy_views(spec: DetectorSpec) -> list[tuple[float, int]]:
    """The (sigma, seed) of each noisy view of the images a detector reads."""
    return kind_class(spec.kind).noisy_views(spec.settings)


def needs_noisy_views(name: str, details: dict[str, dict]) -> bool:
    """Whether a saved detector (details: saved()) reads, or fuses one that reads, noisy views of each
    image, which only the compare stage computes."""
    found = details.get(name)
    if found is None:
        return False
    spec = DetectorSpec(kind=found["kind"], features=found["features"], params=found["params"])
    return bool(noisy_views(spec)) or any(needs_noisy_views(m, details) for m in members(spec))


class BatchScores:
    """What each saved detector scored on the last batch of feature rows, shared by the score functions of
    one process (fakedetect serve, predict --all): a fusion's members are the detectors scored beside it,
    scored once per batch. A batch is one array object: another array starts afresh."""

    def __init__(self):
        self._rows, self._scored = None, {}

    def get(self, name: str, x: np.ndarray, compute: Callable[[], Scored]) -> Scored:
        if x is not self._rows:
            self._rows, self._scored = x, {}
        if name not in self._scored:
            self._scored[name] = compute()
        return self._scored[name]


def score_function(folder: str | os.PathLike, name: str, layers: list[tuple[str, int]],
                   shared: BatchScores | None = None) -> tuple[FittedDetector, Callable[[np.ndarray], Scored]]:
    """A saved detector and its scoring of feature rows (its members loaded and scored first), for the
    detectors that need no noisy views (needs_noisy_views). A member loaded twice (a k-NN detector and
    a fusion's member) maps its bank once (feature_files.open_matrix); with `shared`, it is also scored
    once per batch. Without `shared` nothing is kept from one call to the next."""
    detector = load(Path(folder) / name)
    fused = {m: load(Path(folder) / m) for m in members(detector.spec)}

    def viewed(x: np.ndarray, found: FittedDetector, scores: dict | None = None) -> Inputs:
        return Inputs(*view(x, layers, found.spec.features, f"detectors.{found.name}"), {}, scores or {})

    def score(x: np.ndarray) -> Scored:
        batch = shared or BatchScores()
        scored = {m: batch.get(m, x, lambda d=d: d.score(viewed(x, d))).ranking for m, d in fused.items()}
        return batch.get(name, x, lambda: detector.score(viewed(x, detector, scored)))

    return detector, score


def saved(folder: str | os.PathLike) -> dict[str, dict]:
    """The detectors saved under `folder` (the compare stage's models/detectors): name -> detector.json."""
    found = sorted(Path(folder).glob(f"*/{DETAILS}"))
    return {path.parent.name: json.loads(path.read_text()) for path in found}


def out_of_sample(details: dict) -> bool:
    """Whether a saved detector's validation figures are out-of-sample (held out or cross-fitted)."""
    return not str((details.get("validation") or {}).get("how", "in-sample")).startswith("in-sample")


def default_detector(details: dict[str, dict]) -> tuple[str | None, str]:
    """predict's default among saved detectors (name -> detector.json): the best validation AP among
    those whose validation figures are out-of-sample and that need no noisy views (on a tie the kind
    earlier in run order, then the first by name), with why; or None and why there is none."""
    fitted = {name: d for name, d in details.items() if (d.get("validation") or {}).get("ap") is not None}
    runnable = {name: d for name, d in fitted.items() if not needs_noisy_views(name, details)}
    fair = {name: d for name, d in runnable.items() if out_of_sample(d)}
    if not fair:
        why = ("no fitted detector (the compare stage has not run: dvc repro compare)" if not fitted else
               f"the fitted detectors ({', '.join(sorted(fitted))}) need noisy views of each image" if not runnable
               else f"no detector has out-of-sample validation figures ({', '.join(sorted(runnable))})")
        return None, why
    # on a tie, the simpler: the kind earlier in run order (a fusion after its members), then the name
    best = min(fair, key=lambda name: (-fair[name]["validation"]["ap"], kind_class(fair[name]["kind"]).order, name))
    left_out = [f"{name} (needs noisy views)" for name in sorted(set(fitted) - set(runnable))]
    left_out += [f"{name} ({fair_or['validation']['how']})" for name, fair_or in sorted(runnable.items())
                 if name not in fair]
    tied = sorted(n for n in fair if n != best and fair[n]["validation"]["ap"] == fair[best]["validation"]["ap"])
    return best, (f"the best out-of-sample validation AP ({fair[best]['validation']['ap']}%, "
                  f"{fair[best]['validation']['how']})" + (f", tied with {', '.join(tied)}: the simpler kind" if tied else "")
                  + (f"; left out: {', '.join(left_out)}" if left_out else ""))
