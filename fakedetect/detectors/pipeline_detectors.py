"""The detectors of the named stages, as registry detectors: nn_eval's k-NN (params `nn`) and the
linear stages' head (params `linear`: the head named by linear.head, fitted by linear_train and saved
as models/linear.keras, or linear.external_head). compare, robustness and predict reuse them, so the
figures of nn_eval equal compare's `knn` and those of linear_eval its detector of kind linear.head.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from fakedetect.artifacts import LINEAR_MODEL
from fakedetect.detectors import registry
from fakedetect.params import DetectorSpec, Params
from fakedetect.stage import UserError

KNN, LINEAR = "knn", "linear"  # the names they have in the reports that are not compare's


def splits(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The row numbers of the training and of the validation split."""
    split = rows.split.to_numpy()
    return np.flatnonzero(split == "train"), np.flatnonzero(split == "val")


def knn_spec(params: Params) -> DetectorSpec:
    """nn_eval's k-NN: the `knn` kind on the whole feature row, recipe from params `nn`."""
    return DetectorSpec(kind="knn", params=params.nn.model_dump(mode="json"))


def linear_spec(params: Params) -> DetectorSpec:
    """The linear stages' head: linear.external_head, or the head named by linear.head with its recipe."""
    p = params.linear
    if p.external_head:
        return DetectorSpec(kind="external_head", params={"path": p.external_head})
    return DetectorSpec(kind=p.head, params={**getattr(p, p.head).model_dump(mode="json"), "seed": p.seed})


def fit_knn(params: Params, matrix: np.ndarray, rows: pd.DataFrame, folder: str | os.PathLike) -> registry.FittedDetector:
    """nn_eval's k-NN on a feature folder's matrix: its bank is the training rows, by reference."""
    train, val = splits(rows)
    labels = rows.label.to_numpy()
    spec, layers = knn_spec(params), [("all", matrix.shape[1])]
    return registry.fit(KNN, spec, registry.inputs(matrix, layers, spec, train, KNN, folder), labels[train],
                        registry.inputs(matrix, layers, spec, val, KNN), labels[val])


def linear_detector(params: Params, matrix: np.ndarray, rows: pd.DataFrame,
                    model_path: str | os.PathLike = LINEAR_MODEL) -> registry.FittedDetector:
    """The head linear_train fitted (models/linear.keras) or the external head, calibrated on the
    validation split."""
    train, val = splits(rows)
    labels, spec = rows.label.to_numpy(), linear_spec(params)
    layers = [("all", matrix.shape[1])]
    val_inputs = registry.inputs(matrix, layers, spec, val, LINEAR)
    model = registry.build(LINEAR, spec)
    if params.linear.external_head:  # nothing to fit: the head is read and checked against the features
        model.key = "linear.external_head"
        model.fit(registry.Inputs(matrix[:1], layers), labels[:1], None, None)
    elif not os.path.isfile(model_path):
        raise UserError(f"{model_path} is missing: run the linear_train stage (dvc repro linear_train)")
    else:
        model.restore_model(model_path, matrix.shape[1])
    return registry.adopt(LINEAR, spec, model, val_inputs, labels[val])
