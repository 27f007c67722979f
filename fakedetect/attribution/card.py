"""The model card written beside the trained levels: what a predictor needs to rebuild them, and
loading a level back for inference. `fakedetect predict` imports only this and `network`."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from fakedetect import atomic
from fakedetect.attribution.network import MEAN, STD, build_resnet, for_inference

MODEL_CARD = "model.json"  # beside the saved levels


@dataclass(frozen=True)
class LevelCard:
    file: str  # the state dict, beside the card
    classes: list[str]  # in the order of the network's outputs (one logit: class 1 when >= 0)
    outputs: int


@dataclass(frozen=True)
class ModelCard:
    arch: str
    levels: dict[str, LevelCard]
    family_level: str  # the level that names a fake's family (GAN or diffusion)
    mean: list[float] = field(default_factory=lambda: list(MEAN))
    std: list[float] = field(default_factory=lambda: list(STD))
    input: str = ("a preprocessed RGB image (whole, as the preprocess stage writes it), uint8 / 255, "
                  "normalised by mean and std")
    hierarchy: str = "level1 fake (logit >= 0) -> family_level: one of its classes (one logit: class 1 when >= 0)"

    def write(self, folder: str | os.PathLike) -> None:
        atomic.write_json(Path(folder) / MODEL_CARD, asdict(self))

    @classmethod
    def read(cls, folder: str | os.PathLike) -> ModelCard:
        raw = json.loads((Path(folder) / MODEL_CARD).read_text())
        return cls(**{**raw, "levels": {name: LevelCard(**entry) for name, entry in raw["levels"].items()}})


def load_level(models_dir: str | os.PathLike, level: str | None = None) -> tuple[nn.Module, list[str]]:
    """A trained level's network (weights only, never unpickled) and its classes, rebuilt from
    the model card and prepared for inference (network.for_inference); by default the level
    that names a fake's family."""
    card = ModelCard.read(models_dir)
    entry = card.levels[level or card.family_level]
    state = torch.load(Path(models_dir) / entry.file, map_location="cpu", weights_only=True)
    model = build_resnet(card.arch, entry.outputs)
    model.load_state_dict(state)
    return for_inference(model), entry.classes
