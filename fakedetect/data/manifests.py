"""The manifest that ingest writes and four stages read: its columns, UnivFD's test-set sampling, and
reading it back (fakedetect.data.reading fills it: one row per file and test set)."""
from __future__ import annotations

import os
import random

import numpy as np
import pandas as pd

from fakedetect.data.layouts import SPLIT_ORDER, Candidate


COLUMNS = ["id", "path", "sha256", "split", "test_set", "label", "generator", "family",
           "category", "width", "height", "mode", "status", "reason"]


def sample_test_sets(candidates: list[Candidate], max_per_class: int | None, seed: int) -> list[Candidate]:
    """UnivFD's sampling: per test set, shuffle with the seed and keep at most max_per_class
    real and fake files. Train and val are kept whole."""
    if max_per_class is None:
        return list(candidates)
    kept = [c for c in candidates if c.split != "test"]
    by_set: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.split == "test":
            by_set.setdefault(c.test_set, []).append(c)
    for name in sorted(by_set):
        rng = random.Random(seed)
        for label in (0, 1):
            files = sorted((c for c in by_set[name] if c.label == label), key=lambda c: c.path)
            rng.shuffle(files)
            kept.extend(files[:max_per_class])
    return kept


def sample_rows(rows: pd.DataFrame, max_per_class: int | None, seed: int) -> pd.DataFrame:
    """At most max_per_class rows of each class of each split and test set (a sample seeded by `seed`), the
    rows kept in their order and index; None keeps them all."""
    if max_per_class is None:
        return rows
    kept = [group.index if len(group) <= max_per_class else group.sample(max_per_class, random_state=seed).index
            for _, group in rows.groupby(["split", "test_set", "label"], sort=False)]
    return rows.loc[sorted(np.concatenate(kept))] if kept else rows


def sort_key(row: dict) -> tuple:
    return (SPLIT_ORDER[row["split"]], row["test_set"], row["label"], row["category"], row["path"])


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest CSV with its column types (empty strings stay empty strings)."""
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    for column in ("id", "label", "width", "height"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("int64")
    return frame
