"""Preprocessing protocols (docs/pipeline.md "preprocess"): what each image looks like when the detector sees it.

Training images follow the notebook protocol (resize, JPEG q80, 5x5 blur on a seeded half)
or CNNDetection's Blur+JPEG(p), after an optional format alignment (`align_train_jpeg`: every
training image re-encoded at one JPEG quality first); validation and test images follow UnivFD's
(centre crop, no resize, no re-compression). Each image's random choices come from a generator seeded
by (seed, the image's sha256), so they do not change when other images are added.

Outputs store exactly the protocol's pixels: where its last step is the JPEG encode, the
file is that JPEG; otherwise a lossless PNG, so nothing is compressed twice.
"""
from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from fakedetect import atomic
from fakedetect.data import images
from fakedetect.data.images import BadImage
from fakedetect.params import PreprocessParams


def image_rng(seed: int, sha256: str) -> np.random.Generator:
    """The random stream of one image, keyed by its content."""
    return np.random.default_rng([seed, int(sha256[:16], 16)])


def blurred_half(sha256s, seed: int, fraction: float) -> set[str]:
    """The images the notebook protocol blurs: of the distinct images, the round(fraction * n)
    whose keyed random number is smallest. Exactly that share, and adding images moves only
    the few near the line across it."""
    distinct = sorted(set(sha256s))
    keys = sorted((image_rng(seed, sha).random(), sha) for sha in distinct)
    return {sha for _, sha in keys[: round(fraction * len(distinct))]}


def jpeg_encode(rgb: np.ndarray, quality: int, method: str = "cv2") -> bytes:
    if method == "pil":
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(quality))
        return buffer.getvalue()
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return data.tobytes()


def png_encode(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def jpeg_decode(data: bytes) -> np.ndarray:
    return images.decode(data)[0]


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """torchvision's CenterCrop: zero-pad a short side to `size` (extra pixel right/bottom), then
    crop at round((H - size) / 2), exactly UnivFD's test transform before normalisation."""
    h, w = rgb.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        rgb = np.pad(rgb, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
        h, w = rgb.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def notebook(rgb: np.ndarray, params: PreprocessParams, sha256: str, blur: bool) -> tuple[bytes, str, str]:
    """Resize to size x size, JPEG at quality 80 (OpenCV, as the notebook), then the 5x5 blur
    where `blur` (the seeded half, chosen by blurred_half)."""
    p = params.notebook
    resized = cv2.resize(rgb, (params.size, params.size), interpolation=cv2.INTER_LINEAR)
    jpeg = jpeg_encode(resized, p.jpeg_quality)
    if not blur:
        return jpeg, ".jpg", f"resize{params.size}+jpeg{p.jpeg_quality}"
    blurred = cv2.GaussianBlur(jpeg_decode(jpeg), (p.blur_kernel, p.blur_kernel), 0)
    return png_encode(blurred), ".png", f"resize{params.size}+jpeg{p.jpeg_quality}+blur{p.blur_kernel}"


def blur_jpeg(rgb: np.ndarray, params: PreprocessParams, sha256: str, blur: bool = False) -> tuple[bytes, str, str]:
    """CNNDetection Blur+JPEG(p): short side to load_size; blur (sigma ~ U) with prob p; JPEG
    (cv2 or PIL, quality ~ U integer) with prob p; random crop; horizontal flip."""
    p = params.blur_jpeg
    rng = image_rng(params.seed, sha256)
    steps = []
    h, w = rgb.shape[:2]
    if min(h, w) != p.load_size:
        scale = p.load_size / min(h, w)
        rgb = cv2.resize(rgb, (max(p.load_size, round(w * scale)), max(p.load_size, round(h * scale))),
                         interpolation=cv2.INTER_LINEAR)
        steps.append(f"resize{p.load_size}")
    if rng.random() < p.prob:
        sigma = float(rng.uniform(*p.blur_sigma))
        rgb = np.stack([gaussian_filter(rgb[:, :, c], sigma=sigma) for c in range(3)], axis=2)
        steps.append(f"blur{sigma:.2f}")
    if rng.random() < p.prob:
        method = p.jpeg_methods[int(rng.integers(len(p.jpeg_methods)))]
        quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
        rgb = jpeg_decode(jpeg_encode(rgb, quality, method))
        steps.append(f"jpeg_{method}{quality}")
    h, w = rgb.shape[:2]
    top, left = int(rng.integers(h - params.size + 1)), int(rng.integers(w - params.size + 1))
    rgb = rgb[top:top + params.size, left:left + params.size]
    steps.append(f"crop{params.size}")
    if p.flip and rng.random() < 0.5:
        rgb = rgb[:, ::-1]
        steps.append("flip")
    return png_encode(np.ascontiguousarray(rgb)), ".png", "+".join(steps)


def test_protocol(rgb: np.ndarray, params: PreprocessParams, sha256: str, blur: bool = False) -> tuple[bytes, str, str]:
    return png_encode(center_crop(rgb, params.size)), ".png", f"center_crop{params.size}"


def protocol_of(split: str, params: PreprocessParams):
    """Training images get the training protocol; validation and test images the test protocol."""
    if split != "train":
        return test_protocol
    return notebook if params.train_protocol == "notebook" else blur_jpeg


def _process(task: tuple[str, str, str, str, bool], params: PreprocessParams) -> tuple[str, str, str, str]:
    """(source path, sha256, split, output stem, notebook blur) -> (output path, output sha256,
    augmentation, skip reason)."""
    path, sha256, split, stem, blur = task
    try:
        decoded = images.load(path)
    except BadImage as exc:
        return "", "", "", exc.reason
    if decoded.sha256 != sha256:
        return "", "", "", "changed_since_ingest"
    rgb, aligned = decoded.rgb, ""
    if split == "train" and params.align_train_jpeg is not None:  # the format control, before the protocol
        rgb, aligned = jpeg_decode(jpeg_encode(rgb, params.align_train_jpeg, "pil")), f"align_jpeg{params.align_train_jpeg}+"
    data, ext, augmentation = protocol_of(split, params)(rgb, params, sha256, blur)
    augmentation = aligned + augmentation
    out = stem + ext
    atomic.write_bytes(out, data)
    return out, images.sha256_of(data), augmentation, ""


def preprocess(manifest: pd.DataFrame, params: PreprocessParams, out_dir: str, workers: int) -> pd.DataFrame:
    """Preprocess every usable manifest row (each distinct image and protocol once, in parallel);
    return the rows with `image`, `image_sha256`, `augmentation`, and the status updated."""
    rows = manifest[manifest.status == "ok"].copy()
    kind = np.where(rows.split == "train", "train", "test")
    stems = [str(Path(out_dir) / k / s[:2] / s) for k, s in zip(kind, rows.sha256)]
    blurred = blurred_half(rows.sha256[kind == "train"], params.seed, params.notebook.blur_fraction)
    blur = [k == "train" and sha in blurred for k, sha in zip(kind, rows.sha256)]
    tasks = sorted(set(zip(rows.path, rows.sha256, kind, stems, blur)))
    with ProcessPoolExecutor(workers) as pool:
        done = dict(zip([t[3] for t in tasks],
                        tqdm(pool.map(_process, tasks, [params] * len(tasks), chunksize=8),
                             total=len(tasks), desc="preprocess", unit="img", mininterval=2)))
    added = ["image", "image_sha256", "augmentation", "reason"]
    rows[added] = pd.DataFrame([done[s] for s in stems], columns=added, index=rows.index)
    rows["status"] = np.where(rows.reason == "", "ok", "skipped")
    return rows.reset_index(drop=True)
