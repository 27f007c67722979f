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
stage's output, `data/features/`, is assembled from it at the end of every run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from fakedetect import atomic

log = logging.getLogger("featurestore")
KEY_DTYPE = "S64"  # a hex sha256


class FeatureStore:
    """The shards of one backbone identity."""

    def __init__(self, root: str | os.PathLike, identity: dict):
        self.identity = identity
        self.model_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / self.model_id
        description = self.folder / "model.json"
        if not description.is_file():
            atomic.write_json(description, identity)

    def _digest(self, keys: np.ndarray, features: np.ndarray) -> str:
        digest = hashlib.sha256(self.model_id.encode())
        digest.update(keys.tobytes())
        digest.update(features.tobytes())
        return digest.hexdigest()

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """The shard's (keys, features), or None when it is unreadable or does not match its name."""
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, features = z["keys"], z["features"]
        except Exception:  # a truncated or garbled zip raises many types
            return None
        if (keys.dtype != KEY_DTYPE or features.dtype != np.float32 or features.ndim != 2
                or len(keys) != len(features) or self._digest(keys, features) != path.stem):
            return None
        return keys, features

    def load(self, wanted: set[str]) -> dict[str, np.ndarray]:
        """Features of the wanted images that valid shards hold; invalid shards are deleted."""
        found: dict[str, np.ndarray] = {}
        for path in sorted(self.folder.glob("[0-9a-f]*.npz")):
            shard = self._read_shard(path)
            if shard is None:
                log.warning("%s is corrupt: deleted, its images will be recomputed", path)
                path.unlink(missing_ok=True)
                continue
            for key, vector in zip(shard[0].astype(str), shard[1]):
                if key in wanted:
                    found.setdefault(key, vector)
        return found

    def add(self, keys: list[str], features: np.ndarray) -> Path:
        """Write one shard atomically; return its path."""
        keys_array = np.asarray(keys, dtype=KEY_DTYPE)
        features = np.ascontiguousarray(features, dtype=np.float32)
        path = self.folder / f"{self._digest(keys_array, features)}.npz"
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=keys_array, features=features)
        return path
