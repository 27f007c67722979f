"""What training re-reads every epoch, kept out of the process's memory: the images (decoded once) and
the frozen trunk's activations (computed once, float16), in scratch files read back one batch at a
time with pread."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from fakedetect.attribution.network import forward_stages, frozen_prefix, normalize, prefix_stride, stage_modules
from fakedetect.params import RESNET_STAGES, AttributionParams
from fakedetect.stage import UserError

log = logging.getLogger("attribution")


SCRATCH = ".cache/attribution"  # a run's record files: unlinked at creation, so gone when it ends


CACHE_DTYPE = np.float16  # frozen-trunk activations: half the bytes of float32 (docs/attribution.md "resnet_attribution")


class RecordFile:
    """N fixed-shape arrays in an anonymous scratch file, read back by index with pread (not
    mmap: the pages read stay out of the process's resident memory)."""

    def __init__(self, n: int, shape: tuple[int, ...], dtype, folder: str | os.PathLike = SCRATCH):
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.file = tempfile.TemporaryFile(dir=folder)
        self.n, self.shape, self.dtype = n, tuple(shape), np.dtype(dtype)
        self.record_bytes = int(np.prod(self.shape)) * self.dtype.itemsize

    def write(self, start: int, arrays: np.ndarray) -> None:
        """Records start, start + 1, ... from a batch of arrays."""
        data = np.ascontiguousarray(arrays, dtype=self.dtype)
        os.pwrite(self.file.fileno(), data.tobytes(), start * self.record_bytes)

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        out = np.empty((len(idx), *self.shape), self.dtype)
        for j, i in enumerate(idx.tolist()):
            got = os.preadv(self.file.fileno(), [memoryview(out[j]).cast("B")], i * self.record_bytes)
            if got != self.record_bytes:
                raise OSError(f"scratch record {i}: read {got} of {self.record_bytes} bytes")
        return torch.from_numpy(out)


def read_image(path: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A preprocessed image as uint8 3 x H x W, checked against the others' shape."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    if shape is not None and pixels.shape != shape:
        raise UserError(f"{path} is {pixels.shape}, not {shape} like the others: rerun the preprocess stage")
    return pixels


class ImageBank:
    """The images training re-reads (each level's training and validation images), decoded once
    into a record file of N x 3 x H x W uint8."""

    def __init__(self, paths: list[str]):
        self.paths = sorted(set(paths))
        self.position = {p: i for i, p in enumerate(self.paths)}
        self.shape = read_image(self.paths[0]).shape
        self.pixels = RecordFile(len(self.paths), self.shape, np.uint8)
        for i, path in enumerate(tqdm(self.paths, desc="load images", unit="img", mininterval=2)):
            self.pixels.write(i, read_image(path, self.shape)[None])

    def index(self, paths) -> torch.Tensor:
        return torch.tensor([self.position[p] for p in paths], dtype=torch.long)


@dataclass
class Inputs:
    """Where a level's network starts: the images, or the cached activations of its frozen prefix."""

    bank: ImageBank
    start: int = 0  # stage index the network runs from
    activations: RecordFile | None = None  # bank-aligned, when start > 0

    def full(self, idx: torch.Tensor) -> torch.Tensor:
        if self.activations is not None:
            return self.activations.read(idx).float()
        return normalize(self.bank.pixels.read(idx))

    def crops(self, idx: torch.Tensor, crop_px: int | None, align: int, gen: torch.Generator) -> torch.Tensor:
        """Random crops of crop_px pixels at offsets that are multiples of `align` pixels."""
        x = self.full(idx)
        if crop_px is None:
            return x
        scale = prefix_stride(self.start)  # pixels per cell of x
        side_px = x.shape[-1] * scale
        positions = (side_px - crop_px) // align + 1
        offsets = torch.randint(positions, (len(idx), 2), generator=gen) * align // scale
        size = crop_px // scale
        return torch.stack([x[i, :, oy:oy + size, ox:ox + size] for i, (oy, ox) in enumerate(offsets.tolist())])


def cache_prefix(model: nn.Module, bank: ImageBank, start: int, batch_size: int) -> RecordFile:
    """The frozen prefix's activations for every image of the bank, computed once, kept in float16."""
    model.eval()
    cache = None
    with torch.no_grad():
        for lo in tqdm(range(0, len(bank.paths), batch_size), desc="frozen trunk", unit="batch", mininterval=2):
            idx = torch.arange(lo, min(lo + batch_size, len(bank.paths)))
            x = forward_stages(model, normalize(bank.pixels.read(idx)), 0, start)
            if cache is None:
                cache = RecordFile(len(bank.paths), x.shape[1:], CACHE_DTYPE)
            cache.write(lo, x.numpy())
    return cache


def make_inputs(model: nn.Module, bank: ImageBank, p: AttributionParams,
                cache: dict[bytes, RecordFile]) -> Inputs:
    """Inputs from the cached frozen prefix when reuse is on (one cache per distinct prefix
    weights: every level shares it when they start from the same trunk), else from pixels."""
    start = frozen_prefix(p.freeze) if p.reuse_frozen else 0
    if not start:
        return Inputs(bank)
    prefix = [m for name in RESNET_STAGES[:start] for m in stage_modules(model, name)]
    fingerprint = b"".join(t.numpy().tobytes() for m in prefix for t in m.state_dict().values())
    if fingerprint not in cache:
        cache[fingerprint] = cache_prefix(model, bank, start, p.batch_size)
        per_image = cache[fingerprint].record_bytes
        log.info("frozen trunk cached on disk: %d images x %s %s, %.2f MiB per image, %.0f MiB in all",
                 len(bank.paths), cache[fingerprint].shape, np.dtype(CACHE_DTYPE).name, per_image / 2**20,
                 per_image * len(bank.paths) / 2**20)
    return Inputs(bank, start, cache[fingerprint])
