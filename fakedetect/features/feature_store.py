"""The feature store: per-image features kept across runs, so extraction is resumable and
incremental.

Layout: `<root>/<model id>/` holds `model.json` (the backbone identity: model, weights tag or
checkpoint hash, transform, layers, precision; the model id is a hash of it) and shard files
`<digest>.npz`, each the features of one extracted batch: `keys` (the sha256 of each
preprocessed image's file) and `features` (float32, one row per key). A shard's name is the
sha256 of (model id, keys, features), so a shard is verified by re-hashing it: a truncated,
altered or misplaced file is detected, deleted and its images recomputed. Shards are written
atomically (temporary name, then rename), so a killed run leaves only whole shards, and a
re-run computes only the images that no valid shard holds.

The store lives outside DVC's outputs (DVC deletes a stage's outputs before running it); the
stage's output, `data/features/`, is assembled from it at the end of every run. Its default
place is the user's cache folder, shared by every workspace and clone on the machine (queued and
`--temp` experiments run in a temporary copy of the workspace): `extract.store`, else the
FAKEDETECT_STORE environment variable, else the platform's user cache folder.

Several extract processes may share one store (parallel queue workers): shards only appear
whole (renamed into place), identical shards replace each other harmlessly, a corrupt shard is
moved aside before it is judged so that no process deletes another's good copy, and a process
computes only while holding the backbone's lock, after re-reading what the previous holder wrote,
so that no image is encoded twice.
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

log = logging.getLogger("featurestore")
KEY_DTYPE = "S64"  # a hex sha256
STORE_ENV = "FAKEDETECT_STORE"
DESCRIPTION = "model.json"
SHARDS = "[0-9a-f]*.npz"  # temporary and set-aside files start with a dot: never read as shards


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
    """The shards of one backbone identity."""

    def __init__(self, root: str | os.PathLike, identity: dict):
        self.identity = identity
        self.model_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / self.model_id
        self._read: set[str] = set()  # shards this instance has read
        self._shard_of: dict[str, str] = {}  # image key -> the first read shard that holds it
        description = self.folder / DESCRIPTION
        if not description.is_file():
            atomic.write_json(description, identity)

    def _digest(self, keys: np.ndarray, features: np.ndarray) -> str:
        digest = hashlib.sha256(self.model_id.encode())
        digest.update(keys.tobytes())
        digest.update(features.tobytes())
        return digest.hexdigest()

    def _read_shard(self, path: Path, name: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The shard's (keys, features), or None when it is unreadable or does not match its name
        (`name`, default the file's)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, features = z["keys"], z["features"]
        except Exception:  # a truncated or garbled zip raises many types
            return None
        if (keys.dtype != KEY_DTYPE or features.dtype != np.float32 or features.ndim != 2
                or len(keys) != len(features) or self._digest(keys, features) != (name or path.stem)):
            return None
        return keys, features

    def load(self, wanted: set[str]) -> dict[str, np.ndarray]:
        """Features of the wanted images that valid shards hold; corrupt shards are deleted. A shard
        this instance has read is read again only when it holds a wanted image: a second call for
        the images the first did not find (another process may have stored them) reads only new
        shards."""
        found: dict[str, np.ndarray] = {}
        again = {self._shard_of[key] for key in wanted if key in self._shard_of}
        for path in sorted(self.folder.glob(SHARDS)):
            if path.name in self._read and path.name not in again:
                continue
            shard = self._read_shard(path)
            if shard is None:
                self._discard(path)
                continue
            self._read.add(path.name)
            for key, vector in zip(shard[0].astype(str), shard[1]):
                self._shard_of.setdefault(key, path.name)
                if key in wanted:
                    found.setdefault(key, vector)
        return found

    def _discard(self, path: Path) -> None:
        """Delete a shard found corrupt. It is first moved aside (atomically, to a name only this
        process uses) and judged again there: another process may have renamed a good copy (same
        name, same content) onto it in between, and that copy is put back, not deleted."""
        aside = path.with_name(f".{path.name}.{os.getpid()}.corrupt")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return  # another process set it aside first
        if self._read_shard(aside, path.stem) is not None:
            os.replace(aside, path)
            return
        aside.unlink()
        log.warning("%s is corrupt: deleted, its images will be recomputed", path)

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

    def add(self, keys: list[str], features: np.ndarray) -> Path:
        """Write one shard atomically; return its path."""
        keys_array = np.asarray(keys, dtype=KEY_DTYPE)
        features = np.ascontiguousarray(features, dtype=np.float32)
        path = self.folder / f"{self._digest(keys_array, features)}.npz"
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=keys_array, features=features)
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
    """What the store holds, one entry per backbone identity (only shard keys are read)."""
    listed = []
    for folder in sorted(p for p in Path(root).glob("*") if (p / DESCRIPTION).is_file()):
        keys: set[bytes] = set()
        shards = sorted(folder.glob(SHARDS))
        for path in shards:
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys.update(z["keys"].tolist())
            except Exception:  # a corrupt shard: the next extract deletes it
                continue
        identity = json.loads((folder / DESCRIPTION).read_text())
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        listed.append(Entry(folder.name, identity, len(keys), len(shards), size))
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
