"""Feature extraction: one feature row per usable manifest row, each image encoded at most once
per backbone (the feature store remembers it across runs).

An engine (fakedetect.features.engines: this machine, or a Ray cluster) reads, verifies and encodes the
images the store lacks; every finished batch goes to the store at once, here in this process
(or, with extract.ray.workers_write, the encoder wrote it into the shared store and this process
verifies and indexes it), so a killed run loses at most the batches in flight, whatever the engine.

Test rows may be cropped otherwise than by the centre crop (`extract.test_crop`,
docs/crop_policies.md "The policies"): each (image, crop policy) is its own store entry.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from fakedetect.features import crops
from fakedetect.features.backbones import Backbone
from fakedetect.features.engines import Engine, Item, LocalEngine, ShardWriter
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import CropPolicy
from fakedetect.stage import UserError

log = logging.getLogger("extract")


@dataclass(frozen=True)
class Run:
    images: int  # distinct images
    computed: int  # encoded in this run
    reused: int  # read from the store
    seconds: float  # spent encoding (loading, transforming, encoding, storing)


@dataclass(frozen=True)
class Encoded:
    features: dict[str, np.ndarray]  # by key: every item's that could be read
    problems: dict[str, str]  # by key: why an item could not be read (a BadImage reason)
    messages: list[str]  # the same, for people
    computed: int  # items encoded in this call (the others came from the store)
    seconds: float  # spent encoding


def encode_missing(items: dict[str, Item], encoder: Backbone | Engine, store: FeatureStore, batch_size: int,
                   loader_workers: int, desc: str = "extract") -> Encoded:
    """Features of every item, by its store key: those the store holds, the others encoded by the
    engine (a backbone runs on the local engine), each batch stored at once. The one loop every
    stage that encodes images goes through. An item's crop policy is the caller's to put in its key
    (crops.key): a tiles item is encoded as its k crops and stored as their mean, one row."""
    engine = LocalEngine(encoder) if isinstance(encoder, Backbone) else encoder
    found = store.load(set(items))
    todo = [key for key in items if key not in found]
    log.info("%d distinct images: %d in the feature store %s, %d to compute",
             len(items), len(items) - len(todo), store.folder, len(todo))
    problems, messages, computed, seconds = {}, [], 0, 0.0
    if todo:
        with store.computing():  # another process may have encoded some of them meanwhile
            found |= store.load(set(todo))
            todo = [key for key in todo if key not in found]
            start = time.perf_counter()
            writes = getattr(engine, "workers_write", False)  # extract.ray.workers_write: encoders write shards
            extra = {"writer": ShardWriter(str(store.folder), store.model_id, store.dtype, todo)} if writes else {}
            with tqdm(total=len(todo), desc=desc, unit="img", mininterval=2) as progress:
                for batch in engine.encode([items[key] for key in todo], engine.crop, batch_size, loader_workers,
                                           **extra):
                    for position, reason, message in batch.problems:
                        problems[todo[position]] = reason
                        messages.append(message)
                    keys = [todo[i] for i in batch.positions]
                    if keys and batch.shard is not None:  # an encoder wrote it: verify, index, read it back
                        found.update(store.load(set(keys)))
                    elif keys:
                        store.add(keys, batch.features)
                        found.update(zip(keys, store.as_stored(batch.features)))  # as a later run reads them
                    computed += len(keys)
                    progress.update(len(batch.positions) + len(batch.problems))
            seconds = time.perf_counter() - start
    if computed:
        log.info("computed %d images in %.1f s: %.1f images/s", computed, seconds, computed / seconds)
    return Encoded(found, problems, messages, computed, seconds)


def row_items(rows: pd.DataFrame, test_crop: CropPolicy | None = None) -> tuple[list[str], dict[str, Item]]:
    """(each row's store key, the items by key: each (image, policy) once). A row's image is its
    preprocessed file (`image`, `image_sha256`), centre-cropped; under a `test_crop` other than the
    centre crop, a test row's image is its original file instead (`path`, `sha256`: the manifest's,
    at its native resolution, as the robustness perturbations read it), cropped by the policy."""
    items, keys = {}, []
    other = not crops.is_center(test_crop)
    if other and not {"split", "path", "sha256"} <= set(rows.columns):
        raise ValueError("rows need split, path and sha256 (the original files) for a test crop policy")
    for i, (path, sha256) in enumerate(zip(rows.image, rows.image_sha256)):
        policy = test_crop if other and rows.split.iat[i] == "test" else None
        if policy is not None:
            path, sha256 = rows.path.iat[i], rows.sha256.iat[i]
        keys.append(crops.key(sha256, policy))
        items.setdefault(keys[-1], Item(path, sha256, crop=policy))
    return keys, items


def extract(rows: pd.DataFrame, encoder: Backbone | Engine, store: FeatureStore, batch_size: int,
            loader_workers: int, test_crop: CropPolicy | None = None) -> tuple[np.ndarray, Run]:
    """Features of every row (see row_items for the columns), float32, row-aligned; the test rows'
    images cropped by `test_crop` (None: the centre crop, as the others)."""
    keys, items = row_items(rows, test_crop)
    encoded = encode_missing(items, encoder, store, batch_size, loader_workers)
    if encoded.problems:
        raise UserError(f"{len(encoded.problems)} preprocessed images cannot be used (re-run the preprocess "
                        f"stage: dvc repro preprocess):\n  " + "\n  ".join(encoded.messages))
    matrix = np.stack([encoded.features[key] for key in keys]).astype(np.float32, copy=False)
    return matrix, Run(len(items), encoded.computed, len(items) - encoded.computed, encoded.seconds)
