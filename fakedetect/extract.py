"""Feature extraction: one feature row per usable manifest row, each image encoded at most once
per backbone (the feature store remembers it across runs).

Loader processes read, verify and transform the next batches while the encoder runs, so
decoding is hidden behind the model; every finished batch goes to the store at once, so a
killed run loses at most the batches in flight.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fakedetect import images
from fakedetect.backbones import Backbone, Transform
from fakedetect.featurestore import FeatureStore
from fakedetect.images import BadImage
from fakedetect.stage import UserError

log = logging.getLogger("extract")


class ImageFiles(torch.utils.data.Dataset):
    """(path, sha256) -> (sha256, transformed image or None, problem or '')."""

    def __init__(self, items: list[tuple[str, str]], transform: Transform):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor | None, str]:
        path, sha256 = self.items[i]
        try:
            decoded = images.load(path)
        except BadImage as exc:
            return sha256, None, f"{path}: {exc}"
        if decoded.sha256 != sha256:
            return sha256, None, f"{path}: its content no longer matches image_sha256 in the manifest"
        return sha256, self.transform(decoded.rgb), ""


def collate(items: list[tuple[str, torch.Tensor | None, str]]
            ) -> tuple[list[str], torch.Tensor | None, list[tuple[str, str]]]:
    """(keys of the usable items, their stacked tensors or None, (key, problem) of the others)."""
    good = [(key, tensor) for key, tensor, problem in items if not problem]
    batch = torch.stack([tensor for _, tensor in good]) if good else None
    return [key for key, _ in good], batch, [(key, problem) for key, _, problem in items if problem]


def encode_into_store(dataset: torch.utils.data.Dataset, backbone: Backbone, store: FeatureStore, batch_size: int,
                      loader_workers: int, on_problems: Callable[[list[tuple[str, str]]], None],
                      desc: str = "extract") -> dict[str, np.ndarray]:
    """Encode every item of a dataset of (key, transformed image or None, problem) in loader
    processes and store each batch at once; return the features by key. `on_problems` gets each
    batch's unusable items (key, problem) before its usable ones are encoded: raising stops the run."""
    encoded: dict[str, np.ndarray] = {}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=loader_workers,
                                         collate_fn=collate, pin_memory=backbone.device.type == "cuda")
    with tqdm(total=len(dataset), desc=desc, unit="img", mininterval=2) as progress:
        for keys, batch, problems in loader:
            if problems:
                on_problems(problems)
            if batch is not None:
                vectors = backbone.encode(batch)
                store.add(keys, vectors)
                encoded.update(zip(keys, vectors))
            progress.update(len(keys) + len(problems))
    return encoded


def _refuse(problems: list[tuple[str, str]]) -> None:
    raise UserError(f"{len(problems)} preprocessed images cannot be used (re-run the preprocess "
                    f"stage: dvc repro preprocess):\n  " + "\n  ".join(problem for _, problem in problems))


@dataclass(frozen=True)
class Run:
    images: int  # distinct images
    computed: int  # encoded in this run
    reused: int  # read from the store
    seconds: float  # spent encoding (loading, transforming, encoding, storing)


def extract(rows: pd.DataFrame, backbone: Backbone, store: FeatureStore, batch_size: int,
            loader_workers: int) -> tuple[np.ndarray, Run]:
    """Features of every row (rows need `image` and `image_sha256`), float32, row-aligned."""
    paths = dict(zip(rows.image_sha256, rows.image))  # each distinct image once, in manifest order
    found = store.load(set(paths))
    todo = [(path, sha256) for sha256, path in paths.items() if sha256 not in found]
    log.info("%d distinct images: %d in the feature store %s, %d to compute",
             len(paths), len(paths) - len(todo), store.folder, len(todo))
    start = time.perf_counter()
    if todo:
        found.update(encode_into_store(ImageFiles(todo, backbone.transform), backbone, store, batch_size,
                                       loader_workers, _refuse))
    seconds = time.perf_counter() - start
    if todo:
        log.info("computed %d images in %.1f s: %.1f images/s", len(todo), seconds, len(todo) / seconds)
    matrix = np.stack([found[sha256] for sha256 in rows.image_sha256]).astype(np.float32, copy=False)
    return matrix, Run(len(paths), len(todo), len(paths) - len(todo), seconds)
