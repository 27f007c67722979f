"""The local engine (this process encodes while loader processes decode), and what every engine
shares: the items it encodes, reading one (decode, verify, perturb, crop), encoding a batch of
crops, its results. The Ray engine's encoders run these same functions (fakedetect.features.engines
says why that makes the engines' features bit-identical).
"""
from __future__ import annotations

import torch  # noqa: I001  before anything that could import TensorFlow: the reverse order segfaults

import ctypes
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fakedetect.data import images, perturbations
from fakedetect.features import crops
from fakedetect.features.backbones import Backbone
from fakedetect.data.images import BadImage, Limits
from fakedetect.params import CropPolicy, Perturbation

@dataclass(frozen=True)
class Item:
    """An image file to encode and, where known, the SHA-256 its content must have."""

    path: str
    sha256: str | None = None
    perturbation: Perturbation | None = None  # applied to the decoded image before the crop (robustness)
    crop: CropPolicy | None = None  # how the image becomes the backbone's input; None = centre crop


@dataclass
class Encoded:
    """One batch's results: positions refer to the list of items given to `encode`."""

    positions: list[int]  # images encoded, in batch order
    features: np.ndarray  # float32, one row per position
    pixels: np.ndarray | None  # each one's first uint8 crop (N x crop x crop x 3: the centre crop by default), if asked
    problems: list[tuple[int, str, str]]  # (position, reason, message) of images that cannot be used
    shard: str | None = None  # the store shard an encoder wrote these features into (then `features` is empty)


@dataclass(frozen=True)
class ShardWriter:
    """Where encoders write their own shards (extract.ray.workers_write): a store folder every node
    sees at this path, its model id and dtype, and the store key of each item given to `encode`."""

    folder: str
    model_id: str
    dtype: str
    keys: list[str]


def read(item: Item, crop: int, limits: Limits) -> tuple[np.ndarray | None, str, str]:
    """(the crops of the item's policy as uint8, k x crop x crop x 3, '', '') or (None, reason, message):
    decode, verify, perturb, crop."""
    try:
        decoded = images.load(item.path, limits)
    except BadImage as exc:
        return None, exc.reason, f"{item.path}: {exc}"
    if item.sha256 is not None and decoded.sha256 != item.sha256:
        return None, "changed_since_ingest", f"{item.path}: its content no longer matches image_sha256 in the manifest"
    rgb = decoded.rgb if item.perturbation is None else perturbations.apply(decoded.rgb, item.perturbation, decoded.sha256)
    pixels = crops.crops(rgb, crop, item.crop, decoded.sha256)
    return np.require(pixels, requirements="W"), "", ""  # torch wants writable


def encode_pixels(backbone: Backbone, pixels: np.ndarray) -> np.ndarray:
    """Features of a batch of uint8 crops, one row per crop: the same call on every engine."""
    return backbone.encode(backbone.transform.batch(pixels))


def encode_crops(backbone: Backbone, pixels: np.ndarray, counts: list[int]) -> np.ndarray:
    """One feature row per image of a batch whose images gave `counts` consecutive crops each:
    a single crop's features as they are, the mean of several (float32)."""
    features = encode_pixels(backbone, pixels)
    if all(n == 1 for n in counts):
        return features
    bounds = np.cumsum([0, *counts])
    return np.stack([features[a:b].mean(0, dtype=np.float32) for a, b in zip(bounds[:-1], bounds[1:])])


def batches_of(n: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


class _Files(torch.utils.data.Dataset):
    """position -> (position, uint8 crop or None, reason, message), in loader processes."""

    def __init__(self, items: list[Item], crop: int, limits: Limits):
        self.items, self.crop, self.limits = items, crop, limits

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        pixels, reason, message = read(self.items[i], self.crop, self.limits)  # k x crop x crop x 3
        return i, None if pixels is None else torch.from_numpy(pixels), reason, message


def _collate(rows):
    good = [(i, pixels) for i, pixels, _, _ in rows if pixels is not None]
    batch = torch.cat([pixels for _, pixels in good]).numpy() if good else None
    problems = [(i, reason, message) for i, pixels, reason, message in rows if pixels is None]
    return [i for i, _ in good], batch, [len(pixels) for _, pixels in good], problems


def first_crops(pixels: np.ndarray, counts: list[int]) -> np.ndarray:
    """Each image's first crop (its only one under the centre crop)."""
    return pixels if all(n == 1 for n in counts) else pixels[np.cumsum([0, *counts[:-1]])]


class LocalEngine:
    """This process encodes; `loader_workers` processes decode the next batches meanwhile."""

    def __init__(self, backbone: Backbone):
        self.backbone = backbone
        self.identity = backbone.identity
        self.crop = backbone.transform.crop
        self.device = str(backbone.device)
        self.layers = list(backbone.layers)  # (name, width) of each slice of the output row

    def dimension(self) -> int:
        return encode_pixels(self.backbone, np.zeros((1, self.crop, self.crop, 3), np.uint8)).shape[1]

    def encode(self, items: list[Item], crop: int, batch_size: int, loader_workers: int,
               limits: Limits = Limits(), keep_pixels: bool = False) -> Iterator[Encoded]:
        loader = torch.utils.data.DataLoader(_Files(items, crop, limits), batch_size=batch_size,
                                             num_workers=loader_workers, collate_fn=_collate,
                                             worker_init_fn=_end_with_the_parent if loader_workers else None)
        for positions, pixels, counts, problems in loader:
            features = (encode_crops(self.backbone, pixels, counts) if pixels is not None
                        else np.zeros((0, 0), np.float32))
            yield Encoded(positions, features, first_crops(pixels, counts) if keep_pixels and pixels is not None
                          else None, problems)

    def close(self) -> None:
        pass


PR_SET_PDEATHSIG = 1


def _end_with_the_parent(worker_id: int) -> None:
    """A loader process is killed with the process that started it (a stage killed with SIGKILL, or by the
    OOM killer): otherwise it waits on a full queue for ever, holding its memory (Linux's prctl)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
