"""Perturbed test images, computed as UnivFD's validate.py computes them, and their feature-store keys.

The perturbation is applied to the original test image (the manifest's file, decoded as ingest
decodes it: RGB uint8, EXIF orientation applied, transparency over white), real and fake alike,
and only then does the test protocol follow (centre crop, the backbone's transform): UnivFD
perturbs before its CenterCrop. The steps, in this fixed order:

- blur: `scipy.ndimage.gaussian_filter(channel, sigma, output=channel)` on each channel of the
  uint8 array, the result written into the uint8 array as UnivFD does;
- resize: Pillow's bicubic resampling, which widens its filter when it shrinks (antialiased), as
  photo software and upload pipelines scale; a non-antialiased scale would alias and add
  artifacts of its own that a detector could take for a generator's;
- jpeg: saved by Pillow as JPEG at the quality in memory and decoded again.

The features of a perturbed image are stored under a key derived from what determines its
pixels: the source file's SHA-256, the perturbation, and the versions of Pillow and SciPy that
compute it (an upgrade that could change the pixels computes them again). The key is known
without decoding anything, so a re-run finds every stored image at once.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import PIL
import scipy
from PIL import Image
from scipy.ndimage import gaussian_filter

from fakedetect.data import preprocess
from fakedetect.params import Perturbation

PROTOCOL = {"order": "blur, resize, jpeg", "pillow": PIL.__version__, "scipy": scipy.__version__}


def name(perturbation: Perturbation | None) -> str:
    """A grid point's name in metrics and plots ('clean', 'jpeg50', 'blur2+jpeg50', 'resize0_5'):
    no dots, which `dvc metrics diff` would read as nesting."""
    if perturbation is None:
        return "clean"
    parts = [f"{kind}{value:g}".replace(".", "_") for kind, value in
             (("blur", perturbation.blur), ("resize", perturbation.resize), ("jpeg", perturbation.jpeg))
             if value is not None]
    return "+".join(parts)


def apply(rgb: np.ndarray, perturbation: Perturbation) -> np.ndarray:
    """The perturbed image (H' x W' x 3 uint8) of an RGB uint8 image; the input is not changed."""
    rgb = np.array(rgb, dtype=np.uint8, copy=True)  # the blur writes into it
    if perturbation.blur is not None:
        for c in range(3):
            gaussian_filter(rgb[:, :, c], output=rgb[:, :, c], sigma=perturbation.blur)
    if perturbation.resize is not None:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * perturbation.resize)), max(1, round(h * perturbation.resize)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
    if perturbation.jpeg is not None:
        rgb = preprocess.jpeg_decode(preprocess.jpeg_encode(rgb, perturbation.jpeg, method="pil"))
    return rgb


def key(source_sha256: str, perturbation: Perturbation) -> str:
    """The feature-store key of a source image under a perturbation (a hex SHA-256)."""
    recipe = {"source": source_sha256, "perturbation": perturbation.model_dump(), **PROTOCOL}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
