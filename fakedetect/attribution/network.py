"""The network of every level: a torchvision ResNet with a new head, its frozen leading stages,
and the trunk weights it starts from.

Frozen stages keep their weights and their BatchNorm statistics. When the frozen stages are the
leading ones (stem, layer1, ...), their activations can be computed once per image and only the
rest of the network trained on them (see `training`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.fx.experimental.optimization import fuse

from fakedetect.runtime import checkpoints
from fakedetect.runtime.downloads import why_no_download
from fakedetect.params import RESNET_STAGES
from fakedetect.stage import UserError

# torchvision's ImageNet normalisation: the pretrained trunks expect it, a new one does not mind.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Output stride of the network after each stage.
STAGE_STRIDE = {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


def load_trunk_weights(arch: str, weights: str, key: str = "attribution.weights") -> dict | None:
    """The state dict that `weights` names: torchvision's DEFAULT ImageNet weights for `arch`
    (from torch hub's cache, downloaded only when the network is there), a local file, or None.
    Fails at once, naming `key`, when they cannot be had."""
    if weights == "none":
        return None
    if weights == "imagenet":
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if not cached.is_file():
            why = why_no_download(url)
            if why:
                raise UserError(f"{key}: imagenet weights for {arch} are not in {cached.parent} and {why}; "
                                f"put {os.path.basename(url)} there, give a local state dict path, or use none")
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"{key}: {weights!r} is neither imagenet, none, nor an existing file")
    return checkpoints.load_state_dict(path, key, f"a state dict of a torchvision {arch}")


def build_resnet(arch: str, n_outputs: int, trunk: dict | None = None, key: str = "attribution.weights") -> nn.Module:
    """A torchvision ResNet with a new `fc` head of n_outputs; the trunk (everything but fc)
    loaded from `trunk` when given. The caller seeds torch first: the head is random."""
    model = torchvision.models.get_model(arch, weights=None)
    model.fc = nn.Linear(model.fc.in_features, n_outputs)
    if trunk is not None:
        trunk = {k: v for k, v in trunk.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = model.load_state_dict(trunk, strict=False)
        except RuntimeError as exc:  # shapes that differ
            raise UserError(f"{key}: the weights do not fit {arch}: {str(exc).splitlines()[1].strip()}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise UserError(f"{key}: the weights do not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def outputs_for(n_classes: int) -> int:
    """Two classes get one logit (class 1 when it is >= 0); more get one logit each."""
    return 1 if n_classes == 2 else n_classes


def stage_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The modules of one stage of a torchvision ResNet (stem = conv1, bn1, relu, maxpool)."""
    if name == "stem":
        return [model.conv1, model.bn1, model.relu, model.maxpool]
    return [getattr(model, name)]


def frozen_prefix(freeze: list[str]) -> int:
    """How many leading stages are frozen: the part whose activations can be computed once."""
    n = 0
    while n < len(RESNET_STAGES) and RESNET_STAGES[n] in freeze:
        n += 1
    return n


def prefix_stride(start: int) -> int:
    """Image pixels per cell of the activations after the first `start` stages (1: the image)."""
    return STAGE_STRIDE[RESNET_STAGES[start - 1]] if start else 1


def freeze_stages(model: nn.Module, freeze: list[str]) -> list[nn.Module]:
    """Stop gradients into the frozen stages; return their modules (kept in eval mode in training)."""
    modules = [m for name in freeze for m in stage_modules(model, name)]
    for m in modules:
        m.requires_grad_(False)
    return modules


def forward_stages(model: nn.Module, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Run stages start..stop-1 (indices into RESNET_STAGES; 0 = from the image)."""
    for name in RESNET_STAGES[start:stop]:
        for m in stage_modules(model, name):
            x = m(x)
    return x


def forward_from(model: nn.Module, x: torch.Tensor, start: int) -> torch.Tensor:
    """Run the network from stage index `start` (0 = the image) to the head's logits."""
    x = forward_stages(model, x, start, len(RESNET_STAGES))
    return model.fc(torch.flatten(model.avgpool(x), 1))


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 N x 3 x H x W -> the float input the network expects."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] >= 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def for_inference(model: nn.Module) -> nn.Module:
    """BatchNorm folded into the convolutions and channels-last memory: faster on the CPU, logits
    that differ from the unfolded network's by float rounding only."""
    return fuse(model.eval()).to(memory_format=torch.channels_last)


def class_probabilities(model: nn.Module, pixels: torch.Tensor) -> np.ndarray:
    """Per image (uint8, N x 3 x H x W, whole preprocessed images), the probability of each
    class: a single logit gives [P(class 0), P(class 1)]."""
    with torch.inference_mode():
        logits = model(normalize(pixels).contiguous(memory_format=torch.channels_last))
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()
