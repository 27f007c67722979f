"""Approximate-search indexes kept between runs, so that an unchanged bank is indexed once.

An index is slow to build (minutes at a million rows) and quick to load. Each is stored as one
file named by a hash of what it depends on: the bank's rows (their values in order, and their
labels), the settings it is built with and the faiss version. A changed bank or setting gets a
new name and a new index; an unchanged one finds its file. The folder is outside every DVC
output (under the feature store's folder by default), so keeping an index changes no pipeline
hash. Files are written atomically and carry a checksum: an unreadable one is rebuilt, with a
warning. Nothing removes old files: `rm -r <folder>` reclaims the space (docs/capacity.md).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from fakedetect import atomic

log = logging.getLogger(__name__)

FOLDER_NAME = "search_indexes"
FORMAT = 1  # bump when the file layout or what an index holds changes
_CHECKSUM = hashlib.sha256().digest_size


def default_folder() -> Path:
    """`search_indexes/` under the feature store's folder: FAKEDETECT_STORE or the user's cache."""
    from fakedetect.features.feature_store import store_root

    return store_root() / FOLDER_NAME


def bank_digest(bank, bank_rows: np.ndarray, bank_labels: np.ndarray, chunk_rows: int) -> str:
    """sha256 of the bank's rows as float32, in order, and of their labels (read in chunks, so a
    memory-mapped bank is never held whole)."""
    digest = hashlib.sha256(f"{len(bank_rows)} x {bank.shape[1]}".encode())
    digest.update(np.ascontiguousarray(bank_labels, dtype=np.int64).tobytes())
    for start in range(0, len(bank_rows), chunk_rows):
        digest.update(np.ascontiguousarray(bank[bank_rows[start:start + chunk_rows]], dtype=np.float32).tobytes())
    return digest.hexdigest()


def index_path(folder: str | os.PathLike, **depends_on) -> Path:
    """The file of the index that depends on exactly these values (the bank's digest, settings...)."""
    import faiss

    key = json.dumps(depends_on | {"faiss": faiss.__version__, "format": FORMAT}, sort_keys=True)
    return Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.faiss"


def load(path: Path):
    """The index stored at `path`; None when there is none, or (with a warning) when it is unreadable."""
    import faiss

    if not path.is_file():
        return None
    try:
        data = np.fromfile(path, dtype=np.uint8)
        if hashlib.sha256(data[_CHECKSUM:]).digest() != data[:_CHECKSUM].tobytes():
            raise ValueError("its checksum does not match its contents")
        return faiss.deserialize_index(data[_CHECKSUM:])
    except (OSError, ValueError, RuntimeError) as error:
        log.warning("search index %s is unreadable (%s): building it again", path, error)
        return None


def save(path: Path, index) -> None:
    """Write `index` (checksum, then faiss's serialisation) atomically."""
    import faiss

    payload = faiss.serialize_index(index)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(hashlib.sha256(payload).digest())
        f.write(memoryview(payload))
