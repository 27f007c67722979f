"""The registry of attribution levels. A level is one entry: the rows it may use, its classes, each
row's class, how its test predictions are reported and the published figures beside them. To
change what a level decides, change its entry here; params choose which sets feed it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from fakedetect.evaluation import published
from fakedetect.attribution.network import predicted_class
from fakedetect.attribution.reports import detection_report, multiclass_report
from fakedetect.evaluation.metrics import set_metrics
from fakedetect.detectors.thresholds import calibrate
from fakedetect.params import LevelParams

HIERARCHY_LEVELS = ("level1", "level2")  # the hierarchy: level 1, then level 2 for what level 1 calls fake


@dataclass(frozen=True)
class Level:
    name: str
    question: str
    uses: Callable[[pd.DataFrame, LevelParams], pd.Series]  # rows (of the selected sets) the level may see
    class_of: Callable[[pd.DataFrame], pd.Series]  # each row's class name
    classes: Callable[[pd.DataFrame, LevelParams], tuple[str, ...]]  # its classes, given training rows and params
    report: Callable[..., dict]  # (test rows with target, their logits, classes, val rows, their logits)

    @property
    def published(self) -> dict:
        return published.ATTRIBUTION.get(self.name, {})

    def targets(self, rows: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
        """The rows with their class index as `target` (NaN for a class outside `classes`)."""
        return rows.assign(target=self.class_of(rows).map({c: i for i, c in enumerate(classes)}).to_numpy())


def _detection(rows: pd.DataFrame, logits: torch.Tensor, classes: tuple[str, ...], val: pd.DataFrame,
               val_logits: torch.Tensor) -> dict:
    """Real vs fake, its threshold on P(fake) calibrated on the level's validation rows."""
    threshold, calibration = calibrate(val.target.to_numpy(), torch.sigmoid(val_logits[:, 0]).numpy())
    return {**detection_report(rows, torch.sigmoid(logits[:, 0]).numpy(), predicted_class(logits).numpy(), classes,
                               threshold),
            "calibrated_threshold": None if threshold is None else round(threshold, 6), "calibration": calibration}


def _family(rows: pd.DataFrame, logits: torch.Tensor, classes: tuple[str, ...], *val) -> dict:
    pred = predicted_class(logits).numpy()
    report = multiclass_report(rows, pred, classes, "family")
    if len(classes) == 2:  # one logit: the second family's score
        report[f"ap_{classes[1]}"] = set_metrics(rows.target.to_numpy(), logits[:, 0].numpy(), pred)["ap"]
    return report


def _generator(rows: pd.DataFrame, logits: torch.Tensor, classes: tuple[str, ...], *val) -> dict:
    return multiclass_report(rows, predicted_class(logits).numpy(), classes, "class")


LEVELS = {level.name: level for level in (
    Level("level1", "real or fake?",
          uses=lambda rows, lp: pd.Series(True, index=rows.index),
          class_of=lambda rows: rows.label.map({0: "real", 1: "fake"}),
          classes=lambda train, lp: ("real", "fake"),
          report=_detection),
    Level("level2", "which of attribution.level2.families made this fake?",
          uses=lambda rows, lp: (rows.label == 1) & rows.family.isin(lp.families),
          class_of=lambda rows: rows.family,
          classes=lambda train, lp: tuple(lp.families),
          report=_family),
    Level("level3", "which generator made this fake (among those in training)?",
          uses=lambda rows, lp: rows.label == 1,
          class_of=lambda rows: rows.generator,
          classes=lambda train, lp: tuple(sorted(set(train.generator))),
          report=_generator),
)}


def hierarchy_classes(family_classes: tuple[str, ...]) -> tuple[str, ...]:
    """The hierarchy's classes: real, then the family level's classes."""
    return ("real", *family_classes)


def hierarchy_decision(level1_pred: np.ndarray, level2_pred: np.ndarray) -> np.ndarray:
    """real (0) when level 1 says real, else 1 + level 2's family index."""
    return np.where(level1_pred == 0, 0, 1 + level2_pred)
