"""Perturbed test images, computed as UnivFD's validate.py computes them, and their feature-store keys.

The perturbation is applied to the original test image (the manifest's file, decoded as ingest
decodes it: RGB uint8, EXIF orientation applied, transparency over white), real and fake alike,
and only then does the test protocol follow (centre crop, the backbone's transform): UnivFD
perturbs before its CenterCrop. The steps, in this fixed order:

- blur: `scipy.ndimage.gaussian_filter(channel, sigma, output=channel)` on each channel of the
  uint8 array, the result written into the uint8 array as UnivFD does;
- resize (a scale factor) and size (the shorter side to this many pixels): Pillow's bicubic resampling, which widens its filter when it shrinks (antialiased), as
  photo software and upload pipelines scale; a non-antialiased scale would alias and add
  artifacts of its own that a detector could take for a generator's;
- jpeg: saved by Pillow as JPEG at the quality in memory and decoded again;
- noise: Gaussian noise of sigma (in [0, 1] pixel units, i.e. 255 * sigma in uint8 steps) added to
  the pixels, clipped to [0, 255] and rounded to uint8; its generator is seeded from the source
  image's SHA-256 and `noise_seed`, so an image gets the same noise on every run and machine
  (numpy's PCG64 stream is stable). The noise-sensitivity detector's noisy views are these.

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
OPTIONAL = ("size", "noise", "noise_seed")  # absent from the keys of the points that do not name them


def name(perturbation: Perturbation | None) -> str:
    """A grid point's name in metrics and plots ('clean', 'jpeg50', 'blur2+jpeg50', 'resize0_5', 'noise0_05'):
    no dots, which `dvc metrics diff` would read as nesting."""
    if perturbation is None:
        return "clean"
    parts = [f"{kind}{value:g}".replace(".", "_") for kind, value in
             (("blur", perturbation.blur), ("resize", perturbation.resize), ("size", perturbation.size),
              ("jpeg", perturbation.jpeg), ("noise", perturbation.noise), ("noiseseed", perturbation.noise_seed))
             if value is not None]
    return "+".join(parts)


def noise_generator(source_sha256: str | None, seed: int | None) -> np.random.Generator:
    """The generator of an image's noise: seeded from its SHA-256 and the perturbation's seed."""
    if source_sha256 is None:
        raise ValueError("a noise perturbation needs the source image's SHA-256 (its seed)")
    digest = hashlib.sha256(f"{source_sha256}:{seed or 0}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def apply(rgb: np.ndarray, perturbation: Perturbation, source_sha256: str | None = None) -> np.ndarray:
    """The perturbed image (H' x W' x 3 uint8) of an RGB uint8 image; the input is not changed.
    A noise perturbation needs the source file's SHA-256 (it seeds the noise)."""
    rgb = np.array(rgb, dtype=np.uint8, copy=True)  # the blur writes into it
    if perturbation.blur is not None:
        for c in range(3):
            gaussian_filter(rgb[:, :, c], output=rgb[:, :, c], sigma=perturbation.blur)
    if perturbation.resize is not None:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * perturbation.resize)), max(1, round(h * perturbation.resize)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
    if perturbation.size is not None:
        h, w = rgb.shape[:2]
        scale = perturbation.size / min(h, w)
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC))
    if perturbation.jpeg is not None:
        rgb = preprocess.jpeg_decode(preprocess.jpeg_encode(rgb, perturbation.jpeg, method="pil"))
    if perturbation.noise is not None:
        noise = noise_generator(source_sha256, perturbation.noise_seed).normal(0.0, 255.0 * perturbation.noise, rgb.shape)
        rgb = np.clip(np.rint(rgb.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    return rgb


def key(source_sha256: str, perturbation: Perturbation) -> str:
    """The feature-store key of a source image under a perturbation (a hex SHA-256)."""
    dumped = perturbation.model_dump()
    for extra in OPTIONAL:  # keys added since the first grid: absent when unused, so older keys stay valid
        if dumped[extra] is None:
            del dumped[extra]
    recipe = {"source": source_sha256, "perturbation": dumped, **PROTOCOL}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
