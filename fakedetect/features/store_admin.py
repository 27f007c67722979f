"""`fakedetect store verify` and `fakedetect store compact`: check every shard of every backbone
whole, and rewrite many small shards into fewer large ones (docs/feature_store.md "Verify and
compact").
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fakedetect.features import shard_files
from fakedetect.features.feature_store import DESCRIPTION, FeatureStore

log = logging.getLogger("featurestore")


@dataclass(frozen=True)
class Checked:
    """What `verify` found in one backbone folder."""

    model_id: str
    shards: int  # shards on disk
    images: int  # keys indexed
    corrupt: list[str]  # shards set aside and deleted (their images are recomputed when next needed)
    reindexed: list[str]  # sound shards whose index rows were wrong, indexed again


def stores(root: str | os.PathLike) -> list[FeatureStore]:
    return [FeatureStore.open(p) for p in sorted(Path(root).glob("*")) if (p / DESCRIPTION).is_file()]


def verify(store: FeatureStore) -> Checked:
    """Re-hash every shard against its name and check every indexed row's checksum; a corrupt shard
    is set aside and deleted (as a load would), a wrong index entry is rebuilt."""
    with store.computing():
        before = shard_files.listing(store.folder)
        store.sync()  # verifies and indexes shards the index did not list (setting corrupt ones aside)
        corrupt = [name for name in before if not (store.folder / name).exists()]
        reindexed = []
        for name in tqdm(sorted(shard_files.listing(store.folder)), desc="verify", unit="shard", leave=False):
            path = store.folder / name
            shard = store._read_shard(path)
            if shard is None:
                store.index.drop([name])
                if store._discard(path):
                    corrupt.append(name)
                continue
            keys, rows = shard
            indexed, positions, checksums = store.index.rows_of(name)
            if indexed:
                expected = shard_files.row_checksums(keys[positions], rows[positions])
                if indexed != keys[positions].astype(str).tolist() or not np.array_equal(expected, checksums):
                    store.index.add(name, keys, rows)
                    reindexed.append(name)
        images, shards = store.index.counts()
    return Checked(store.model_id, shards, images, corrupt, reindexed)


@dataclass(frozen=True)
class Compacted:
    model_id: str
    before: int  # shards
    after: int
    images: int


def compact(store: FeatureStore, rows_per_shard: int) -> Compacted:
    """Rewrite the shards smaller than `rows_per_shard` rows into shards of about that many rows,
    group by group: each new shard is written whole, indexed in one transaction that also drops
    the shards it replaces, and only then are those deleted (a killed compaction leaves every
    image readable; a leftover old shard is indexed again as a duplicate and compacted next time).
    Holds the backbone's lock: no extract process encodes meanwhile."""
    with store.computing():
        store.sync()
        sizes = store.index.shard_rows()
        before = len(sizes)
        duplicates = [name for name, n in sizes.items() if n == 0]  # every key held elsewhere
        store.index.drop(duplicates)
        for name in duplicates:
            (store.folder / name).unlink(missing_ok=True)
        small = sorted(name for name, n in sizes.items() if 0 < n < rows_per_shard)
        groups, group, count = [], [], 0
        for name in small:
            group.append(name)
            count += sizes[name]
            if count >= rows_per_shard:
                groups.append(group)
                group, count = [], 0
        if len(group) > 1:
            groups.append(group)
        for group in tqdm(groups, desc="compact", unit="shard", leave=False):
            keys, vectors = [], []
            for name in group:
                rows = store._read_rows(name, store.index.rows_of(name))
                if rows is None:  # corrupt: verify or the next load deals with it
                    log.warning("%s fails its checksums: left out of the compaction", store.folder / name)
                    continue
                keys.extend(rows)
                vectors.append(np.stack(list(rows.values())).astype(store.dtype) if rows else None)
            vectors = [v for v in vectors if v is not None]
            if not vectors:
                continue
            path, keys_array, stored = shard_files.write(store.folder, store.model_id, keys, np.concatenate(vectors),
                                                         store.dtype)
            store.index.replace(path.name, keys_array, stored, [n for n in group if n != path.name])
            for name in group:
                if name != path.name:
                    (store.folder / name).unlink(missing_ok=True)
        images, shards = store.index.counts()
    return Compacted(store.model_id, before, shards, images)
