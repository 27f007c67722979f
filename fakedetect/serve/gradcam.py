"""Where the network looked: Grad-CAM of the attribution's level-1 (real/fake) network over its
last convolution stage (layer4), as a PNG overlay on the preprocessed image (docs/serve.md
"What the page shows")."""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fakedetect.attribution import card, network
from fakedetect.params import RESNET_STAGES

LEVEL = "level1"
# A small blue -> cyan -> yellow -> red ramp (no plotting library at serve time).
RAMP = np.array([[0, 0, 128], [0, 160, 255], [0, 255, 160], [255, 255, 0], [255, 96, 0], [200, 0, 0]], np.float32)


class GradCam:
    """The level-1 network, rebuilt unfused (Grad-CAM needs layer4's activations and gradients)."""

    def __init__(self, models_dir: str | os.PathLike, level: str = LEVEL):
        model_card = card.ModelCard.read(models_dir)
        entry = model_card.levels[level]
        self.model = network.build_resnet(model_card.arch, entry.outputs)
        state = torch.load(Path(models_dir) / entry.file, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()
        self.classes = entry.classes

    def cam(self, pixels: np.ndarray) -> tuple[np.ndarray, str]:
        """The class map (H x W in [0, 1], layer4's resolution) of the predicted class of one
        uint8 H x W x 3 image, and that class."""
        x = network.normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None])
        with torch.enable_grad():
            acts = network.forward_stages(self.model, x, 0, len(RESNET_STAGES)).detach().requires_grad_(True)
            logits = self.model.fc(torch.flatten(self.model.avgpool(acts), 1))
            predicted = int(network.predicted_class(logits)[0])
            target = (logits[0, 0] if predicted == 1 else -logits[0, 0]) if logits.shape[1] == 1 else logits[0, predicted]
            (grads,) = torch.autograd.grad(target, acts)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        heat = torch.relu((weights * acts.detach()).sum(dim=1))[0].numpy()
        top = heat.max()
        return (heat / top if top > 0 else heat), self.classes[predicted]

    def overlay_png(self, pixels: np.ndarray, alpha: float = 0.45) -> tuple[str, str]:
        """A data: URL of the image with its class map blended over it, and the predicted class."""
        heat, predicted = self.cam(pixels)
        h, w = pixels.shape[:2]
        heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32) / 255
        position = heat * (len(RAMP) - 1)
        low = np.floor(position).astype(int).clip(0, len(RAMP) - 2)
        colour = RAMP[low] + (position - low)[..., None] * (RAMP[low + 1] - RAMP[low])
        blended = (1 - alpha) * pixels.astype(np.float32) + alpha * colour
        buffer = io.BytesIO()
        Image.fromarray(blended.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), predicted
