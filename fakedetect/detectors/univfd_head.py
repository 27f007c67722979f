"""UnivFD-format linear heads: a `torch.save`d state dict {'weight': [1, D], 'bias': [1]}.

UnivFD releases its trained probe in this format (`pretrained_weights/fc_weights.pth`);
scoring our features with it compares our feature extraction with theirs on the same
head. The file is read with `weights_only=True` (never unpickling code); scoring is numpy.
Torch-side module: a process that imports it must not import Keras first (docs/architecture.md "Environment facts worth knowing").
"""
from __future__ import annotations

import os

import numpy as np
import torch
from scipy.special import expit

from fakedetect.runtime import checkpoints
from fakedetect.stage import UserError

FORMAT = "a UnivFD-format head: {'weight': [1, D], 'bias': [1]} saved with torch.save"


def load(path: str | os.PathLike, dim: int, key: str = "linear.external_head") -> tuple[np.ndarray, np.ndarray]:
    """Weight (1, dim) and bias (1,) of the head at `path`; a UserError naming `key` if it is not one."""
    state = checkpoints.load_state_dict(path, key, FORMAT)
    if set(state) != {"weight", "bias"}:
        raise UserError(f"{key}: {path} must hold exactly the tensors 'weight' and 'bias' (UnivFD's format), "
                        f"found {sorted(state)}")
    weight, bias = (state[name].detach().to(torch.float64).numpy() for name in ("weight", "bias"))
    if weight.shape != (1, dim) or bias.shape != (1,):
        raise UserError(f"{key}: {path} has weight {list(weight.shape)} and bias {list(bias.shape)}; "
                        f"these features need weight [1, {dim}] and bias [1]")
    return weight, bias


def predict(weight: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Probability that each row is fake: sigmoid(features @ weight.T + bias), as UnivFD scores."""
    return expit(features.astype(np.float64) @ weight[0] + bias[0])
