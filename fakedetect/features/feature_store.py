"""The feature store: per-image features kept across runs, so extraction is resumable and
incremental.

Layout: `<root>/<model id>/` holds `model.json` (the backbone identity: model, weights tag or
checkpoint hash, transform, layers, precision, and the stored dtype when it is not float32; the
model id is a hash of it), shard files `<digest>.npz` (fakedetect.features.shard_files: the
features of stored batches, named by the hash of their content) and `index.sqlite`
(fakedetect.features.store_index: which shard and row holds each image). A load looks the
wanted keys up in the index and reads only those rows of only those shards, memory-mapped, each
row checked against its checksum; a shard that fails is set aside, judged whole, deleted when
corrupt, and its images recomputed. Shards are written atomically (temporary name, then rename)
and then indexed in one transaction, so a killed run leaves only whole shards and an index
that the next run brings up to date (a shard not yet indexed is verified and indexed, not
recomputed).

The store lives outside DVC's outputs (DVC deletes a stage's outputs before running it); the
stage's output, `data/features/`, is assembled from it at the end of every run. Its default
place is the user's cache folder, shared by every workspace and clone on the machine (queued and
`--temp` experiments run in a temporary copy of the workspace): `extract.store`, else the
FAKEDETECT_STORE environment variable, else the platform's user cache folder.

Several extract processes may share one store (parallel queue workers): shards only appear
whole (renamed into place), identical shards replace each other harmlessly, a corrupt shard is
moved aside before it is judged so that no process deletes another's good copy, the index
changes under its own lock, and a process computes only while holding the backbone's lock,
after re-reading what the previous holder wrote, so that no image is encoded twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock, Timeout

from fakedetect import atomic
from fakedetect.features import shard_files, store_index
from fakedetect.features.shard_files import KEY_DTYPE

log = logging.getLogger("featurestore")
STORE_ENV = "FAKEDETECT_STORE"
DESCRIPTION = "model.json"


def user_cache_dir() -> Path:
    """The platform's per-user cache folder for fakedetect: %LOCALAPPDATA% on Windows,
    ~/Library/Caches on macOS, else $XDG_CACHE_HOME (when absolute, as the XDG spec requires) or ~/.cache."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else str(Path.home() / ".cache")
    return Path(base) / "fakedetect"


def store_root(configured: str | None = None) -> Path:
    """Where the store lives: `configured` (extract.store), else $FAKEDETECT_STORE, else
    <user cache folder>/features, shared by every workspace on the machine."""
    return Path(configured or os.environ.get(STORE_ENV) or user_cache_dir() / "features")


class FeatureStore:
    """The shards of one backbone identity, stored in `dtype` (float32 or float16; rows always come
    back float32)."""

    def __init__(self, root: str | os.PathLike, identity: dict, dtype: str = "float32"):
        if dtype not in shard_files.DTYPES:
            raise ValueError(f"extract.store_dtype: {dtype!r}, expected one of {', '.join(shard_files.DTYPES)}")
        # float32 rows keep the identity (and folder) that stores had before store_dtype existed.
        self.identity = identity if dtype == "float32" else {**identity, "store_dtype": dtype}
        self.dtype = dtype
        self.model_id = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / self.model_id
        description = self.folder / DESCRIPTION
        if not description.is_file():
            atomic.write_json(description, self.identity)
        self.index = store_index.Index(self.folder)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "FeatureStore":
        """The store of an existing backbone folder (as `fakedetect store` finds it)."""
        folder = Path(folder)
        identity = json.loads((folder / DESCRIPTION).read_text())
        dtype = identity.get("store_dtype", "float32")
        plain = {k: v for k, v in identity.items() if k != "store_dtype"}
        store = cls(folder.parent, plain, dtype)
        if store.folder != folder:
            raise ValueError(f"{folder}: its model.json does not hash to its name")
        return store

    def _read_shard(self, path: Path, name: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole shard's (keys, features), or None when it is unreadable or does not match its name
        (`name`, default the file's)."""
        return shard_files.read(path, self.model_id, self.dtype, name)

    def _indexable(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A shard the index does not list yet, verified whole; a corrupt one is set aside."""
        shard = self._read_shard(path)
        if shard is None:
            self._discard(path)
        return shard

    def sync(self) -> None:
        """Bring the index up to date with the shards on disk (cheap when nothing changed)."""
        self.index.sync(self._indexable)

    def _read_rows(self, name: str, hits: tuple[list[str], np.ndarray, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The hit rows (keys, rows, checksums) of one shard, verified row by row; None when the
        shard fails."""
        keys, rows, checksums = hits
        try:
            vectors = np.asarray(shard_files.features_view(self.folder / name)[rows])
        except Exception:  # unreadable, truncated, or rows beyond its end
            return None
        if vectors.dtype != np.dtype(self.dtype) or \
                not np.array_equal(shard_files.row_checksums(np.asarray(keys, dtype=KEY_DTYPE), vectors), checksums):
            return None
        return dict(zip(keys, vectors.astype(np.float32)))

    def load(self, wanted: set[str]) -> dict[str, np.ndarray]:
        """Features (float32) of the wanted images that valid shards hold: only the shards that hold
        wanted images are opened, and only their wanted rows read. A shard that fails its rows'
        checksums is judged whole: set aside and deleted when corrupt (its images are then
        recomputed), re-indexed when it is sound and the index was wrong."""
        self.sync()
        found: dict[str, np.ndarray] = {}
        for _ in range(2):  # a second pass for shards re-indexed in the first
            retry = False
            for name, hits in self.index.lookup(wanted - found.keys()).items():
                rows = self._read_rows(name, hits)
                if rows is not None:
                    found.update(rows)
                    continue
                self.index.drop([name])
                path = self.folder / name
                if self._discard(path):
                    continue
                shard = self._read_shard(path)
                if shard is not None:
                    self.index.add(name, *shard)
                    retry = True
            if not retry:
                break
        return found

    def _discard(self, path: Path) -> bool:
        """Delete a shard found corrupt; return whether it was deleted. It is first moved aside
        (atomically, to a name only this process uses) and judged again there: another process
        may have renamed a good copy (same name, same content) onto it in between, and that copy
        is put back, not deleted."""
        aside = path.with_name(f".{path.name}.{os.getpid()}.corrupt")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return True  # another process set it aside first
        if self._read_shard(aside, path.stem) is not None:
            os.replace(aside, path)
            return False
        aside.unlink()
        log.warning("%s is corrupt: deleted, its images will be recomputed", path)
        return True

    @contextmanager
    def computing(self) -> Iterator[None]:
        """Hold this backbone's lock while encoding: extract processes on one store take turns, and
        each re-reads (load) what the previous one wrote before encoding the rest. The lock is the
        operating system's, so a killed holder releases it."""
        lock = FileLock(self.folder / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("another extract process is encoding with this backbone in %s: waiting for it", self.folder)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def as_stored(self, features: np.ndarray) -> np.ndarray:
        """Features as a load returns them once stored: rounded to the store's dtype, float32."""
        return np.asarray(features).astype(self.dtype, copy=False).astype(np.float32, copy=False)

    def write(self, keys: list[str], features: np.ndarray) -> Path:
        """Write one shard atomically, without indexing it (the next sync verifies and indexes
        it): what an encoder on another machine of the cluster does."""
        return shard_files.write(self.folder, self.model_id, keys, features, self.dtype)[0]

    def add(self, keys: list[str], features: np.ndarray) -> Path:
        """Write one shard atomically and index it; return its path."""
        path, keys_array, rows = shard_files.write(self.folder, self.model_id, keys, features, self.dtype)
        store_index.test_kill("after-shard")  # tests: a process killed between the shard and its index entry
        self.index.add(path.name, keys_array, rows)
        return path


@dataclass(frozen=True)
class Entry:
    """One backbone identity in a store, as `fakedetect store` lists it."""

    model_id: str
    identity: dict
    images: int  # distinct images with features
    shards: int
    bytes: int  # on disk, leftovers of killed runs included


def entries(root: str | os.PathLike) -> list[Entry]:
    """What the store holds, one entry per backbone identity (read from each folder's index,
    brought up to date first)."""
    listed = []
    for folder in sorted(p for p in Path(root).glob("*") if (p / DESCRIPTION).is_file()):
        store = FeatureStore.open(folder)
        store.sync()
        images, shards = store.index.counts()
        store.index.close()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        listed.append(Entry(folder.name, store.identity, images, shards, size))
    return listed


class InUse(Exception):
    """An extract process is encoding with the backbone to remove."""


def remove(root: str | os.PathLike, model_id: str) -> Entry:
    """Delete one backbone identity's folder (its features are recomputed when next needed);
    KeyError when the store has no such identity, InUse while an extract process encodes with it."""
    found = [e for e in entries(root) if e.model_id == model_id]
    if not found:
        raise KeyError(model_id)
    folder = Path(root) / model_id
    lock = FileLock(folder / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InUse(model_id) from None
    try:
        shutil.rmtree(folder)
    finally:
        lock.release()
    return found[0]
