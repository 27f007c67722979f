"""The head the linear stages score with: the trained Keras head, or, when `linear.external_head`
is set, that UnivFD-format head. Shared by linear_eval and robustness, so both score alike.

Keras (TensorFlow) and torch must not be imported in the wrong order (TensorFlow first segfaults
torchvision): only the side a run needs is imported, when it is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fakedetect.artifacts import LINEAR_MODEL
from fakedetect.params import LinearParams
from fakedetect.stage import UserError

# Which published table each head is compared with.
PUBLISHED_AS = {"fcnn": "notebook_fcnn", "linear_probe": "univfd_linear_probe"}


@dataclass(frozen=True)
class Head:
    predict: Callable[[np.ndarray], np.ndarray]  # features -> probability that each row is fake
    published_as: str  # the metrics.PUBLISHED table to compare with
    name: str


def load(p: LinearParams, dim: int, model_path: str | Path = LINEAR_MODEL) -> Head:
    """The head the params choose (the trained one read from `model_path`), for features of `dim`
    columns; a UserError when it does not fit them."""
    if p.external_head:
        from fakedetect.detectors import univfd_head

        weight, bias = univfd_head.load(p.external_head, dim)
        return Head(lambda x: univfd_head.predict(weight, bias, x), "univfd_linear_probe", "external UnivFD head")
    from fakedetect.detectors import keras_heads

    model = keras_heads.load(model_path)
    if model.input_shape[-1] != dim:
        raise UserError(f"{model_path} expects {model.input_shape[-1]} features but the backbone's have {dim}: "
                        "the head was trained on another backbone's features; run linear_train again (dvc repro)")
    return Head(lambda x: keras_heads.predict(model, x), PUBLISHED_AS[p.head], p.head)
