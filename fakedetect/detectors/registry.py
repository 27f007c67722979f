"""The detector registry: a configured detector (params `detectors`: name -> {kind, features,
params}) is fitted on the training and validation features, scores features as P(fake) and a
ranking score, carries its thresholds, and saves and loads itself (docs/detectors.md "Adding a detector").

A kind is a class with `fit(train, y_train, val, y_val)`, `predict(inputs) -> (P(fake), ranking
score)`, `state()` (numpy arrays, saved to arrays.npz) and `restore(arrays, folder)`; KINDS maps
each kind's name to its module and class, imported when used (Keras loads only for the kinds that
need it; torch must be imported before Keras in a process). Each kind's params are
validated by fakedetect.params.detectors.DETECTOR_PARAMS.

Saved detectors hold json and npz files read without unpickling (`allow_pickle=False`), and Keras
heads in `.keras` files loaded with safe_mode.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.metrics import average_precision_score

from fakedetect import atomic
from fakedetect.detectors.thresholds import calibrate, operating_thresholds
from fakedetect.params import DETECTOR_PARAMS, DetectorSpec
from fakedetect.stage import UserError

# kind -> (module under fakedetect.detectors, class): one entry per kind.
KINDS = {
    "knn": ("basic", "Knn"),
    "fcnn": ("basic", "KerasHead"),
    "linear_probe": ("basic", "KerasHead"),
    "external_head": ("basic", "ExternalHead"),
    "fusion": ("basic", "Fusion"),
    "blocks": ("blocks", "Blocks"),
    "noise_sensitivity": ("noise_sensitivity", "NoiseSensitivity"),
}
assert set(KINDS) == set(DETECTOR_PARAMS), "every kind has its params and its class"
# The order kinds are fitted in: torch before Keras (torch training after TensorFlow has loaded
# crashes the process), fusions last (they read their members' scores).
RUN_ORDER = ("knn", "blocks", "noise_sensitivity", "external_head", "fcnn", "linear_probe", "fusion")
# The published table each kind's figures stand beside (evaluation/published.py).
PUBLISHED_AS = {"knn": "notebook_nn", "fcnn": "notebook_fcnn", "linear_probe": "univfd_linear_probe",
                "external_head": "univfd_linear_probe", "blocks": "rine"}
DETAILS, ARRAYS = "detector.json", "arrays.npz"


@dataclass
class Inputs:
    """What a detector reads for some rows: its view of the features, and what some kinds need more."""

    x: np.ndarray  # the view's columns (float32)
    layers: list[tuple[str, int]]  # the (name, width) of each slice of x, in order
    noisy: dict[float, np.ndarray] = field(default_factory=dict)  # sigma -> the same view of the noisy images
    members: dict[str, np.ndarray] = field(default_factory=dict)  # fusion: its members' ranking scores


def kind_class(kind: str):
    """The class of a kind (its module imported now: blocks imports torch)."""
    from fakedetect.detectors import basic, blocks, noise_sensitivity  # named here so dvc.yaml's deps list them

    module, name = KINDS[kind]
    return getattr({"basic": basic, "blocks": blocks, "noise_sensitivity": noise_sensitivity}[module], name)


def view(matrix: np.ndarray, layers: list[tuple[str, int]], features: str, where: str) -> tuple[np.ndarray, list]:
    """The columns a `features` spec names (all | layer:<name> | layers) and their slices; a UserError
    naming `where` when the features have no such layer."""
    if features in ("all", "layers"):
        return matrix, list(layers)
    name = features.split(":", 1)[1]
    start = 0
    for layer, width in layers:
        if layer == name:
            return matrix[:, start:start + width], [(layer, width)]
        start += width
    raise UserError(f"{where}: the features have no layer {name!r} (they have {', '.join(n for n, _ in layers)})")


def needs(spec: DetectorSpec, layers: list[tuple[str, int]]) -> str | None:
    """Why a detector cannot run on features with these slices (None if it can)."""
    if spec.features == "layers" and len(layers) < 2:
        return f"it reads per-block features (features: layers), and the features have one slice ({layers[0][0]})"
    if spec.features.startswith("layer:") and spec.features[6:] not in {name for name, _ in layers}:
        return f"the features have no layer {spec.features[6:]!r}"
    return None


@dataclass
class Scored:
    p_fake: np.ndarray  # P(fake) per row
    ranking: np.ndarray  # the score AP, ROC and the thresholds use (P(fake) itself where it is fine-grained)

    @property
    def decision(self) -> np.ndarray:  # the detector's own decision: fake when P(fake) > 0.5
        return (self.p_fake > 0.5).astype(np.int64)


@dataclass
class FittedDetector:
    name: str
    spec: DetectorSpec
    model: object  # an instance of its kind's class
    thresholds: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)  # its AP (%) on the validation split: predict's default choice

    def score(self, inputs: Inputs) -> Scored:
        p_fake, ranking = self.model.predict(inputs)
        return Scored(np.asarray(p_fake, np.float64), np.asarray(ranking, np.float64))

    def calibrate(self, val: Inputs, y_val: np.ndarray) -> None:
        """Its thresholds: 0.5 on P(fake); on the ranking score, the validation split's most accurate
        cut and the 1% and 5% false-positive-rate points on the validation reals."""
        ranking = self.score(val).ranking if len(y_val) else np.empty(0)
        calibrated, how = calibrate(y_val, ranking)
        y_val = np.asarray(y_val)
        both = bool((y_val == 0).any() and (y_val == 1).any())
        self.validation = {"ap": round(100 * float(average_precision_score(y_val, ranking)), 4) if both else None}
        self.thresholds = {"p_fake": 0.5, "calibrated": calibrated, "calibration": how,
                           **operating_thresholds(ranking[np.asarray(y_val) == 0])}

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "save_files"):  # what npz cannot hold: a Keras head
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


def fit(name: str, spec: DetectorSpec, train: Inputs, y_train: np.ndarray, val: Inputs,
        y_val: np.ndarray) -> FittedDetector:
    model = build(name, spec)
    model.fit(train, np.asarray(y_train), val, np.asarray(y_val))
    detector = FittedDetector(name, spec, model)
    detector.calibrate(val, np.asarray(y_val))
    return detector


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
    """Detector names (name -> kind) in RUN_ORDER: torch kinds before Keras ones, fusions last."""
    return sorted(kinds, key=lambda name: RUN_ORDER.index(kinds[name]))


def needs_noisy_views(name: str, details: dict[str, dict]) -> bool:
    """Whether a saved detector (details: saved()) is, or fuses, a noise-sensitivity one: scoring it
    needs noisy views of each image, which only the compare stage computes."""
    found = details.get(name, {})
    if found.get("kind") == "noise_sensitivity":
        return True
    members = (found.get("params") or {}).get("members", []) if found.get("kind") == "fusion" else []
    return any(needs_noisy_views(m, details) for m in members)


def score_function(folder: str | os.PathLike, name: str,
                   layers: list[tuple[str, int]]) -> tuple[FittedDetector, Callable[[np.ndarray], Scored]]:
    """A saved detector and its scoring of feature rows (a fusion's members loaded and scored first),
    for the detectors that need no noisy views (needs_noisy_views)."""
    detector = load(Path(folder) / name)
    members = ({m: load(Path(folder) / m) for m in detector.spec.settings.members}
               if detector.spec.kind == "fusion" else {})

    def inputs(x: np.ndarray, found: FittedDetector, scores: dict | None = None) -> Inputs:
        return Inputs(*view(x, layers, found.spec.features, f"detectors.{found.name}"), {}, scores or {})

    def score(x: np.ndarray) -> Scored:
        return detector.score(inputs(x, detector, {m: d.score(inputs(x, d)).ranking for m, d in members.items()}))

    return detector, score


def scorers(folder: str | os.PathLike, layers: list[tuple[str, int]]) -> tuple[dict, dict[str, str]]:
    """The saved detectors as scoring.Scorer (features -> ranking score, decision at P(fake) > 0.5), torch
    kinds first; and those left out, with why (a noise-sensitivity detector needs noisy views)."""
    from fakedetect.detectors.scoring import Scorer

    details = saved(folder)
    found, left_out = {}, {}
    for name in in_run_order({n: d["kind"] for n, d in details.items()}):
        if needs_noisy_views(name, details):
            left_out[name] = "it needs noisy views of each image, which are not computed here"
            continue
        detector, score = score_function(folder, name, layers)

        def ranking_and_decision(x, score=score):
            result = score(x)
            return result.ranking, result.decision

        found[name] = Scorer(name, f"{name} ({detector.spec.kind})", ranking_and_decision)
    return found, left_out


def saved(folder: str | os.PathLike) -> dict[str, dict]:
    """The detectors saved under `folder` (the compare stage's models/detectors): name -> detector.json."""
    found = sorted(Path(folder).glob(f"*/{DETAILS}"))
    return {path.parent.name: json.loads(path.read_text()) for path in found}
