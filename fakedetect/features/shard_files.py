"""The feature store's shard files: one `.npz` per stored batch, `keys` (hex SHA-256, S64) and
`features` (float32 or float16, one row per key), written uncompressed, so that the features
member is memory-mapped in place and a read touches only the rows it wants.

A shard's name is the SHA-256 of (model id, keys, features): verifying a whole shard re-hashes
it. Each row also has a checksum of (key, row bytes), kept in the store's index, so that a read
of a few rows verifies those rows alone (docs/feature_store.md "The index").
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from fakedetect import atomic

KEY_DTYPE = "S64"  # a hex sha256
DTYPES = ("float32", "float16")
SHARDS = "[0-9a-f]*.npz"  # temporary and set-aside files start with a dot: never read as shards


def digest(model_id: str, keys: np.ndarray, features: np.ndarray) -> str:
    """A shard's name: the hash of what it holds, for the backbone it belongs to."""
    h = hashlib.sha256(model_id.encode())
    h.update(keys.tobytes())
    h.update(features.tobytes())
    return h.hexdigest()


def row_checksums(keys: np.ndarray, features: np.ndarray) -> list[int]:
    """One signed 64-bit checksum per row, of its key and its feature bytes (what SQLite stores)."""
    return [int.from_bytes(hashlib.blake2b(key + row.tobytes(), digest_size=8).digest(), "little", signed=True)
            for key, row in zip(keys.tolist(), features)]


def read(path: Path, model_id: str, dtype: str, name: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The whole shard's (keys, features), or None when it is unreadable, not of `dtype`, or
    does not match its name (`name`, default the file's)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, features = z["keys"], z["features"]
    except Exception:  # a truncated or garbled zip raises many types
        return None
    if (keys.dtype != KEY_DTYPE or features.dtype != np.dtype(dtype) or features.ndim != 2
            or len(keys) != len(features) or digest(model_id, keys, features) != (name or path.stem)):
        return None
    return keys, features


def features_view(path: Path) -> np.ndarray:
    """The shard's features, memory-mapped where the member is stored uncompressed (every shard
    this package writes), else read whole. Raises on an unreadable file."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("features.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as z:
            return z["features"]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: bad zip member header")
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        f.seek(start)
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(f)
        offset = f.tell()
    if fortran or len(shape) != 2 or offset + int(np.prod(shape)) * dtype.itemsize > start + info.file_size:
        raise ValueError(f"{path}: unexpected features member")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def write(folder: Path, model_id: str, keys: list[str], features: np.ndarray, dtype: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write one shard atomically (temporary name, then rename); return (path, keys, rows as stored)."""
    keys_array = np.asarray(keys, dtype=KEY_DTYPE)
    rows = np.ascontiguousarray(features, dtype=dtype)
    path = folder / f"{digest(model_id, keys_array, rows)}.npz"
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys_array, features=rows)
    return path, keys_array, rows


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """The shards on disk: name -> (size, mtime_ns), from one directory scan (no file is opened)."""
    found = {}
    for path in folder.glob(SHARDS):
        try:
            st = os.stat(path)
        except FileNotFoundError:  # set aside by another process meanwhile
            continue
        found[path.name] = (st.st_size, st.st_mtime_ns)
    return found
