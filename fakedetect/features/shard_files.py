"""The feature store's shard files: one `.npz` per stored batch, `keys` (hex SHA-256, S64) and
`features` (float32 or float16, one row per key), written uncompressed, so that the features
member is memory-mapped in place and a read touches only the rows it wants.

A shard's name is the SHA-256 of (model id, keys, features): verifying a whole shard re-hashes
it. Each row also has a checksum of (key, row bytes), kept in the store's index, so that a read
of a few rows verifies those rows alone (docs/feature_store.md "The index").
"""
from __future__ import annotations

import hashlib
import mmap
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


_MULTIPLIERS: list[np.ndarray] = []  # odd 64-bit constants, seeded: one per 8-byte word of a row


def _multipliers(words: int) -> np.ndarray:
    if not _MULTIPLIERS or len(_MULTIPLIERS[0]) < words:
        rng = np.random.default_rng(20240124)
        _MULTIPLIERS[:] = [rng.integers(0, 2**63, max(words, 1024), dtype=np.uint64) * np.uint64(2) + np.uint64(1)]
    return _MULTIPLIERS[0][:words]


def row_checksums(keys: np.ndarray, features: np.ndarray, block: int = 8192) -> np.ndarray:
    """One 64-bit checksum per row (int64, as SQLite stores it) of its key and its feature bytes:
    the sum of the row's 8-byte words, each times its own odd constant, modulo 2^64. Any change
    of one word changes it, as does a row moved to another key; vectorised, so checking the rows
    a load reads costs little beside reading them. (A shard's name, the SHA-256 of all of it,
    guards against anything more deliberate: verify and indexing check it.)"""
    keys = np.ascontiguousarray(keys, dtype=KEY_DTYPE)
    out = np.empty(len(keys), dtype=np.uint64)
    for start in range(0, len(keys), block):
        rows = np.ascontiguousarray(features[start:start + block]).view(np.uint8).reshape(len(keys[start:start + block]), -1)
        data = np.concatenate([keys[start:start + block].view(np.uint8).reshape(len(rows), -1), rows], axis=1)
        pad = -data.shape[1] % 8
        if pad:
            data = np.concatenate([data, np.zeros((len(data), pad), np.uint8)], axis=1)
        words = np.ascontiguousarray(data).view(np.uint64)
        out[start:start + block] = (words * _multipliers(words.shape[1])).sum(axis=1, dtype=np.uint64)
    return out.view(np.int64)


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
    view = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    if hasattr(mmap, "MADV_RANDOM"):  # a load picks scattered rows: no read-ahead around each
        view._mmap.madvise(mmap.MADV_RANDOM)  # noqa: SLF001 (numpy keeps the mmap it maps)
    return view


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
