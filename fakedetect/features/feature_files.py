"""Feature matrices on disk: `features.npy` (float32, N x D) row-aligned with `rows.csv`.

`rows.csv` holds, for each row, the manifest columns the classifiers need (id, split,
test_set, label, generator, family, ...) and, for extracted features, the preprocessed image
(`image`, `image_sha256`) and the original file (`path`, `sha256`). Extracted and imported features share this
format, so every downstream stage treats them alike (imported ones: fakedetect.features.imports).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fakedetect import atomic
from fakedetect.data import manifests
from fakedetect.stage import UserError

MATRIX = "features.npy"
ROWS = "rows.csv"
LAYERS = "layers.json"  # the name and width of each slice of a row (per-block features), in order


def save_features(folder: str | os.PathLike, matrix: np.ndarray, rows: pd.DataFrame) -> None:
    """Write the matrix and its rows atomically; they must have the same number of rows."""
    if matrix.ndim != 2 or len(matrix) != len(rows):
        raise ValueError(f"features {matrix.shape} do not match {len(rows)} rows")
    folder = Path(folder)
    with atomic.atomic_path(folder / MATRIX) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    atomic.write_csv(folder / ROWS, rows.reset_index(drop=True))


def load_features(folder: str | os.PathLike, mapped: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a feature folder (never unpickling); check that matrix and rows agree. `mapped`: the
    matrix memory-mapped read-only, one mapping per file in a process (open_matrix)."""
    folder = Path(folder)
    try:
        matrix = open_matrix(folder) if mapped else np.load(folder / MATRIX, allow_pickle=False)
        rows = manifests.read_manifest(folder / ROWS)
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename} is missing: run the extract_clip stage (dvc repro) or dvc pull") from None
    if matrix.dtype != np.float32 or matrix.ndim != 2 or len(matrix) != len(rows):
        raise UserError(f"{folder}: features {matrix.dtype} {matrix.shape} do not match {len(rows)} rows")
    return matrix, rows


@functools.lru_cache(maxsize=8)
def _mapped(path: str, modified: int) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def open_matrix(folder: str | os.PathLike) -> np.ndarray:
    """A feature folder's matrix, memory-mapped read-only; the same mapping for every caller in a
    process while the file is unchanged (a k-NN bank and serve's evidence share it)."""
    path = (Path(folder) / MATRIX).resolve()
    return _mapped(str(path), path.stat().st_mtime_ns)


def save_layers(folder: str | os.PathLike, layers: list[tuple[str, int]]) -> None:
    """Write the (name, width) of each slice of the feature rows, in order."""
    atomic.write_json(Path(folder) / LAYERS, [[str(name), int(width)] for name, width in layers])


def load_layers(folder: str | os.PathLike, dim: int) -> list[tuple[str, int]]:
    """The slices of the feature rows: layers.json, or one slice [("final", dim)] without it (imported
    features); a UserError when the widths do not add up to `dim`."""
    path = Path(folder) / LAYERS
    if not path.is_file():
        return [("final", dim)]
    try:
        layers = [(str(name), int(width)) for name, width in json.loads(path.read_text())]
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a list of [name, width] pairs ({exc})") from None
    if sum(width for _, width in layers) != dim:
        raise UserError(f"{path}: the slices' widths add up to {sum(w for _, w in layers)}, the features have {dim} "
                        "columns: run the extract_clip stage again (dvc repro)")
    return layers


# ------------------------------------------------------------------ imported features
