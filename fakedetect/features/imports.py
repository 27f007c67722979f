"""Imported feature files (extract.imports, the stage import_features): rows of tensors or arrays that
another project computed, labelled by params, written as the pipeline's own features."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fakedetect import vocabulary
from fakedetect.stage import UserError


IMPORT_SUFFIXES = (".pt", ".npy", ".npz")


def read_matrix(path: str, key: str | None, where: str) -> np.ndarray:
    """An N x D float matrix from a .pt tensor, .npy or .npz file, never unpickling.

    torch is imported here only: Keras stages import this module, and importing TensorFlow
    before torch segfaults (docs/architecture.md "Environment facts worth knowing")."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMPORT_SUFFIXES:
        raise UserError(f"{where}.file: {path} is not one of {', '.join(IMPORT_SUFFIXES)}")
    if not os.path.isfile(path):
        raise UserError(f"{where}.file: {path} not found")
    try:
        if suffix == ".pt":
            import torch

            value = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(value, torch.Tensor):
                raise UserError(f"{where}.file: {path} holds a {type(value).__name__}, not a tensor")
            matrix = value.detach().float().numpy()
        elif suffix == ".npy":
            matrix = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if key is None and len(z.files) != 1:
                    raise UserError(f"{where}.key: {path} holds arrays {z.files}; name the one to read")
                if key is not None and key not in z.files:
                    raise UserError(f"{where}.key: {path} has no array {key!r} (it has {z.files})")
                matrix = z[key or z.files[0]]
    except UserError:
        raise
    except Exception as exc:  # pickled objects, corrupt files: torch and numpy raise many types
        raise UserError(f"{where}.file: {path} cannot be read safely: {type(exc).__name__}: {exc}") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise UserError(f"{where}.file: {path} holds {matrix.dtype} {matrix.shape}, expected an N x D float matrix")
    if not np.isfinite(matrix).all():
        raise UserError(f"{where}.file: {path} holds NaN or infinite values")
    return matrix.astype(np.float32, copy=False)


def import_features(sources, key: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The rows named by each import source (params ImportSource list), concatenated in order,
    with their split, test set, label, generator and family; each file is read once."""
    matrices: dict[tuple[str, str | None], np.ndarray] = {}
    blocks, rows = [], []
    for i, source in enumerate(sources):
        where = f"{key}.{i}"
        if (source.file, source.key) not in matrices:
            matrices[source.file, source.key] = read_matrix(source.file, source.key, where)
        matrix = matrices[source.file, source.key]
        start, stop = source.rows or (0, len(matrix))
        if stop > len(matrix):
            raise UserError(f"{where}.rows: [{start}, {stop}) goes past the {len(matrix)} rows of {source.file}")
        if blocks and matrix.shape[1] != blocks[0].shape[1]:
            raise UserError(f"{where}.file: {source.file} has {matrix.shape[1]} columns, "
                            f"{sources[0].file} has {blocks[0].shape[1]}")
        generator = source.generator or ("real" if source.label == 0 else source.test_set or "unknown")
        family = source.family or ("real" if source.label == 0 else vocabulary.family_of(generator))
        blocks.append(matrix[start:stop])
        rows += [dict(split=source.split, test_set=source.test_set, label=source.label, generator=generator,
                      family=family, category="", image="", image_sha256="", source=f"{source.file}:{row}")
                 for row in range(start, stop)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", range(len(frame)))
    return np.concatenate(blocks), frame
