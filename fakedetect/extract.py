"""Feature extraction: one feature row per usable manifest row, each image encoded at most once
per backbone (the feature store remembers it across runs).

An engine (fakedetect.engines: this machine, or a Ray cluster) reads, verifies and encodes the
images the store lacks; every finished batch goes to the store at once, here in this process,
so a killed run loses at most the batches in flight, whatever the engine.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from fakedetect.backbones import Backbone
from fakedetect.engines import Engine, Item, LocalEngine
from fakedetect.featurestore import FeatureStore
from fakedetect.stage import UserError

log = logging.getLogger("extract")


@dataclass(frozen=True)
class Run:
    images: int  # distinct images
    computed: int  # encoded in this run
    reused: int  # read from the store
    seconds: float  # spent encoding (loading, transforming, encoding, storing)


def extract(rows: pd.DataFrame, encoder: Backbone | Engine, store: FeatureStore, batch_size: int,
            loader_workers: int) -> tuple[np.ndarray, Run]:
    """Features of every row (rows need `image` and `image_sha256`), float32, row-aligned; a
    backbone is run by the local engine."""
    engine = LocalEngine(encoder) if isinstance(encoder, Backbone) else encoder
    paths = dict(zip(rows.image_sha256, rows.image))  # each distinct image once, in manifest order
    found = store.load(set(paths))
    todo = [Item(path, sha256) for sha256, path in paths.items() if sha256 not in found]
    log.info("%d distinct images: %d in the feature store %s, %d to compute",
             len(paths), len(paths) - len(todo), store.folder, len(todo))
    seconds = 0.0
    if todo:
        with store.computing():  # another process may have encoded some of them meanwhile
            found |= store.load({item.sha256 for item in todo})
            todo = [item for item in todo if item.sha256 not in found]
            start = time.perf_counter()
            _encode(todo, engine, store, batch_size, loader_workers, found)
            seconds = time.perf_counter() - start
    if todo:
        log.info("computed %d images in %.1f s: %.1f images/s", len(todo), seconds, len(todo) / seconds)
    matrix = np.stack([found[sha256] for sha256 in rows.image_sha256]).astype(np.float32, copy=False)
    return matrix, Run(len(paths), len(todo), len(paths) - len(todo), seconds)


def _encode(todo: list[Item], engine: Engine, store: FeatureStore, batch_size: int,
            loader_workers: int, found: dict[str, np.ndarray]) -> None:
    """Encode the items batch by batch; each batch goes to the store and `found` at once."""
    if todo:
        with tqdm(total=len(todo), desc="extract", unit="img", mininterval=2) as progress:
            for batch in engine.encode(todo, engine.crop, batch_size, loader_workers):
                if batch.problems:
                    raise UserError(f"{len(batch.problems)} preprocessed images cannot be used (re-run the preprocess "
                                    f"stage: dvc repro preprocess):\n  " + "\n  ".join(m for _, _, m in batch.problems))
                keys = [todo[i].sha256 for i in batch.positions]
                store.add(keys, batch.features)
                found.update(zip(keys, batch.features))
                progress.update(len(keys))
