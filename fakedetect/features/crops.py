"""Crop policies: how a (test) image becomes the backbone's input, and the feature-store key of an
image under a policy (docs/crop_policies.md "The policies").

- center: UnivFD's centre crop (zero-padding a short side); its key is the image's own key, so the
  features every run stored before crop policies existed are found as they are;
- tiles: `tiles` crops of the full-resolution image, evenly spread (grid: tile i of n along a side
  centred at (i + 1/2) / n of it, clipped to the image) or at seeded random positions (seeded: from
  the policy's seed and the image's SHA-256); the image's feature is the mean of its crops'
  features, stored as one row;
- resize: the whole image resized to the crop size (aspect ratio not kept) with Pillow's bicubic
  resampling, antialiased, as the robustness perturbation resizes.

A policy other than center keys its row by a hash of the source key and what determines the
crops (the Pillow version too for resize), known without decoding anything.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import PIL
from PIL import Image

from fakedetect.data import preprocess
from fakedetect.params import CropPolicy


def is_center(policy: CropPolicy | None) -> bool:
    return policy is None or policy.policy == "center"


def recipe(policy: CropPolicy) -> dict:
    """What determines a policy's crops (the fields that do not are left out)."""
    if policy.policy == "resize":
        return {"policy": "resize", "pillow": PIL.__version__}
    if policy.policy == "tiles":
        out = {"policy": "tiles", "tiles": policy.tiles, "placement": policy.placement}
        return out | ({"seed": policy.seed} if policy.placement == "seeded" else {})
    return {"policy": "center"}


def key(source_key: str, policy: CropPolicy | None) -> str:
    """The feature-store key of an image (its key under centre cropping) under a crop policy."""
    if is_center(policy):
        return source_key
    text = json.dumps({"source": source_key, "crop": recipe(policy)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def count(policy: CropPolicy | None) -> int:
    """Crops encoded per image."""
    return policy.tiles if policy is not None and policy.policy == "tiles" else 1


def _grid_starts(n: int, length: int, size: int) -> list[int]:
    return [min(max(int(round((i + 0.5) * length / n - size / 2)), 0), length - size) for i in range(n)]


def tile_positions(h: int, w: int, size: int, policy: CropPolicy, sha256: str) -> list[tuple[int, int]]:
    """(top, left) of each tile of an h x w image (both at least `size`)."""
    k = policy.tiles
    if policy.placement == "seeded":
        rng = np.random.default_rng([policy.seed, int(sha256[:16], 16)])
        return [(int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))) for _ in range(k)]
    columns = math.ceil(math.sqrt(k))
    rows = math.ceil(k / columns)
    tops, lefts = _grid_starts(rows, h, size), _grid_starts(columns, w, size)
    return [(tops[i // columns], lefts[i % columns]) for i in range(k)]


def crops(rgb: np.ndarray, size: int, policy: CropPolicy | None, sha256: str) -> np.ndarray:
    """The policy's crops of an RGB uint8 image: k x size x size x 3 uint8 (k = count(policy))."""
    if is_center(policy):
        return preprocess.center_crop(rgb, size)[None]
    if policy.policy == "resize":
        return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))[None].copy()
    rgb = _pad_to(rgb, size)  # a side shorter than the crop: zero-padded as the centre crop pads it
    h, w = rgb.shape[:2]
    return np.stack([rgb[top:top + size, left:left + size] for top, left in tile_positions(h, w, size, policy, sha256)])


def _pad_to(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h >= size and w >= size:
        return rgb
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    return np.pad(rgb, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
