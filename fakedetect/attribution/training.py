"""Training one level: the images it re-reads, the frozen-trunk cache, and the training loop
(Adam, class-weighted loss, early stopping on the balanced validation accuracy).

When the frozen stages are the leading ones, their activations are computed once per image and
only the rest of the network is trained on them (`reuse_frozen`). Training crops are aligned to
the frozen prefix's stride, so that with and without the reuse the same crops are drawn:
cropping the cached activation map is then cropping the image, up to the borders. Validation,
test and inference see the whole preprocessed image; with `precise_bn` the trainable BatchNorm
layers take their statistics from whole training images after each epoch, not from the crops.

Memory stays bounded at any data size: what training re-reads every epoch (the training and
validation images' pixels, and their frozen-trunk activations in float16) lives in scratch
files read back one batch at a time with pread, so it sits in the page cache, not in the
process; test images are decoded and run through the whole network one batch at a time.
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
from typing import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from fakedetect.attribution.data import LevelData
from fakedetect.attribution.network import (build_resnet, forward_from, forward_stages, freeze_stages,
                                            frozen_prefix, normalize, outputs_for, predicted_class,
                                            prefix_stride, stage_modules)
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


def new_model(p: AttributionParams, n_classes: int, trunk: dict | None) -> tuple[nn.Module, list[nn.Module]]:
    """A seeded ResNet for one level, its frozen stages frozen."""
    torch.manual_seed(p.seed)
    model = build_resnet(p.arch, outputs_for(n_classes), trunk)
    return model, freeze_stages(model, p.freeze)


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


def _loss(logits: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """BCE on one logit (two classes) or cross-entropy, each class weighted by class_weight."""
    if logits.shape[1] == 1:
        per_row = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float(), reduction="none")
    else:
        per_row = nn.functional.cross_entropy(logits, target, reduction="none")
    w = class_weight[target]
    return (per_row * w).sum() / w.sum()


def predict(model: nn.Module, inputs: Inputs, idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits for whole images (bank indices), in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(idx), batch_size):
            out.append(forward_from(model, inputs.full(idx[lo:lo + batch_size]), inputs.start))
    return torch.cat(out) if out else torch.empty((0, model.fc.out_features))


def predict_images(model: nn.Module, paths: list[str], shape: tuple[int, ...], batch_size: int) -> torch.Tensor:
    """Logits for whole images read from their files one batch at a time, through the whole
    network in eval mode: what is only tested on is never held or cached."""
    model.eval()
    out = []
    with torch.no_grad():
        for lo in tqdm(range(0, len(paths), batch_size), desc="test images", unit="batch", mininterval=2):
            pixels = np.stack([read_image(path, shape) for path in paths[lo:lo + batch_size]])
            out.append(forward_from(model, normalize(torch.from_numpy(pixels)), 0))
    return torch.cat(out) if out else torch.empty((0, model.fc.out_features))


def recalibrate_batchnorm(model: nn.Module, inputs: Inputs, idx: torch.Tensor, batch_size: int) -> None:
    """Recompute the running statistics of the trainable BatchNorm layers as plain means over the
    whole images `idx`, with the current weights ("precise BatchNorm", Wu and Johnson 2021). The
    moving average kept during training lags behind weights that change every step and was taken
    on training crops; evaluation sees whole images, so without this it normalises with the wrong
    statistics. Frozen layers keep theirs."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight.requires_grad]
    if not layers or len(idx) < 2:  # BatchNorm in training mode needs two values per channel
        return
    momentum = [m.momentum for m in layers]
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    with torch.no_grad():  # batches of near-equal sizes (the average weighs each batch alike), none of one image
        for batch in torch.tensor_split(idx, -(-len(idx) // batch_size)):
            forward_from(model, inputs.full(batch), inputs.start)
    for m, value in zip(layers, momentum):
        m.momentum = value
    for m, training in was_training.items():
        m.train(training)


def class_weights(target: np.ndarray, n_classes: int, balance: bool) -> torch.Tensor:
    if not balance:
        return torch.ones(n_classes)
    counts = np.bincount(target, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class Trained:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    images_per_s: float = 0.0  # training throughput (logged, never in metrics)


def train_level(model: nn.Module, data: LevelData, inputs: Inputs, p: AttributionParams,
                frozen: list[nn.Module], on_epoch: Callable[[dict], None] = lambda row: None) -> Trained:
    """Adam on the unfrozen parameters, class-weighted loss, early stopping with patience on the
    validation accuracy (CNNDetection's criterion; balanced over classes, as level 2 and 3 are
    not); the best epoch's weights are kept. Before each validation, the trainable BatchNorm
    statistics are recomputed on `precise_bn` whole training images (recalibrate_batchnorm).
    `on_epoch` (the training log) gets each epoch's history row."""
    torch.manual_seed(p.seed)
    gen = torch.Generator().manual_seed(p.seed)
    n_classes = len(data.classes)
    train_idx = inputs.bank.index(data.train.image)
    train_target = torch.tensor(data.train.target.to_numpy(), dtype=torch.long)
    val_idx = inputs.bank.index(data.val.image)
    val_target = torch.tensor(data.val.target.to_numpy(), dtype=torch.long)
    weight = class_weights(data.train.target.to_numpy(), n_classes, p.class_balance)
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=p.lr)
    align = prefix_stride(frozen_prefix(p.freeze))  # the same crops with and without reuse_frozen
    samples = len(train_idx) * p.crops_per_image
    used = samples // p.batch_size * p.batch_size or samples  # whole batches: BatchNorm needs > 1
    batches = (used + p.batch_size - 1) // p.batch_size
    # The whole training images that recompute the BatchNorm statistics after each epoch: a seeded
    # sample, the same every epoch.
    bn_idx = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(p.seed))
                       [:p.precise_bn or 0]]
    best, best_epoch, best_state, history = -1.0, 0, None, []
    bar = tqdm(total=p.max_epochs * batches, desc=data.name, unit="batch", mininterval=2)
    seen, seconds = 0, 0.0
    for epoch in range(1, p.max_epochs + 1):
        model.train()
        for m in frozen:
            m.eval()
        order = torch.randperm(samples, generator=gen) % len(train_idx)
        loss_sum, correct = 0.0, 0
        for lo in range(0, used, p.batch_size):
            start = time.perf_counter()
            batch = order[lo:lo + p.batch_size]
            x = inputs.crops(train_idx[batch], p.crop_size, align, gen)
            logits = forward_from(model, x, inputs.start)
            loss = _loss(logits, train_target[batch], weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds += time.perf_counter() - start
            seen += len(batch)
            loss_sum += loss.item() * len(batch)
            correct += int((predicted_class(logits.detach()) == train_target[batch]).sum())
            bar.update()
        recalibrate_batchnorm(model, inputs, bn_idx, p.batch_size)
        val_logits = predict(model, inputs, val_idx, p.batch_size)
        val_loss = _loss(val_logits, val_target, weight).item()
        val_pred = predicted_class(val_logits)
        val_acc = float((val_pred == val_target).float().mean())
        val_balanced = float(np.mean([(val_pred[val_target == c] == c).float().mean() for c in val_target.unique()]))
        history.append({"epoch": epoch, "train_loss": loss_sum / used, "train_accuracy": correct / used,
                        "val_loss": val_loss, "val_accuracy": val_acc, "val_balanced_accuracy": val_balanced})
        on_epoch(history[-1])
        bar.set_postfix(epoch=epoch, val_loss=f"{val_loss:.3f}", val_bal_acc=f"{val_balanced:.3f}")
        log.info("%s epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f balanced %.3f", data.name, epoch,
                 history[-1]["train_loss"], history[-1]["train_accuracy"], val_loss, val_acc, val_balanced)
        if val_balanced > best:
            best, best_epoch, best_state = val_balanced, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= p.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    frame = pd.DataFrame(history).round(6)
    frame["best"] = frame.epoch == best_epoch
    return Trained(model, frame, best_epoch, seen / max(seconds, 1e-9))
