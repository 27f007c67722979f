"""The folds of the generalisation protocols: the stored feature rows re-split by generator, with no
source photograph on both sides of a fold (docs/protocols.md "How a fold is split").

Each row goes with the fake generators it belongs to (`pairing`): a fake with its generator; a real
with the fake generators of its set (same split and test set), since reals carry no generator. So
a CNNDetection test set's reals go with its generator, the training split's with the training
generators, and a real shared by several UnivFD sets (one file, a row per set) with all of them.
Sets without fakes (the demo's real-only controls) go with none and take no part.

A fold names the generators it holds out. A row is wanted on the held-out side when it goes with one
of them, on the training side when it goes with another. Photographs move whole: one wanted on one
side goes there; one wanted on both (a demo test photograph that every family was made from, a real
shared by a held-out and a training set) is held out with the seeded share `held_out_share`.
The photograph is the source photo the demo records in `category`; elsewhere the file (its SHA-256),
or the row itself for imported features.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fakedetect.data import generator_dates

LOGO, CHRONOLOGICAL = "leave_one_generator_out", "chronological"
NEXT, LATER = "immediate_future", "future"  # the chronological folds' test sets: window k+1, windows k+1 on


@dataclass
class Fold:
    protocol: str
    name: str  # the held-out generator, or `window<k>` for the chronological fold that judges window k
    training: list[str]  # the generators of the training side
    held_out: dict[str, list[str]]  # test set -> its generators
    train: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # row indices
    val: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    test: dict[str, np.ndarray] = field(default_factory=dict)
    calibration: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # held out, not scored
    photographs: dict[str, int] = field(default_factory=dict)  # on each side
    skipped: str | None = None  # why the fold cannot run


def pairing(rows: pd.DataFrame) -> list[frozenset]:
    """The fake generators each row goes with: its own (a fake), those of its set (a real)."""
    fake = rows.label.to_numpy() == 1
    sets = (rows.split + "/" + rows.test_set).to_numpy()
    fakes_of = {s: frozenset(g) for s, g in rows[fake].groupby(sets[fake]).generator}
    return [frozenset([g]) if f else fakes_of.get(s, frozenset()) for f, g, s in zip(fake, rows.generator, sets)]


def photographs(rows: pd.DataFrame, demo: bool) -> np.ndarray:
    """Each row's source photograph: the demo's source photo (`category`), else the image file's SHA-256,
    else the row (imported features name no file)."""
    if demo:
        return rows.category.to_numpy(str)
    for column in ("image_sha256", "source"):
        if column in rows and (rows[column].astype(str) != "").all():
            return rows[column].to_numpy(str)
    return rows.id.astype(str).to_numpy()


def _share(photos, share: float, rng: np.random.Generator) -> set:
    """A seeded share of these photographs, at least one and all but one when there are two or more."""
    photos = sorted(photos)
    if not photos:
        return set()
    count = int(share * len(photos) + 0.5)
    if len(photos) > 1:
        count = min(max(count, 1), len(photos) - 1)
    return set(rng.permutation(np.array(photos, dtype=object))[:count])


def _counts(rows: pd.DataFrame, index: np.ndarray) -> dict[str, int]:
    labels = rows.label.to_numpy()[index]
    return {"real": int((labels == 0).sum()), "fake": int((labels == 1).sum())}


def split(rows: pd.DataFrame, pairs: list[frozenset], photos: np.ndarray, fold: Fold, params) -> Fold:
    """Fill the fold's rows (params: evaluation): held-out and training sides by photograph; on the held-out
    side a seeded share of photographs for calibration, the rest scored; on the training side the
    datasets' own train and val rows keep their split, its test-split rows give a seeded share of
    photographs to validation."""
    rng = np.random.default_rng([params.seed, zlib.crc32(f"{fold.protocol}/{fold.name}".encode())])
    held_generators, training = set().union(*fold.held_out.values()), set(fold.training)
    want_held = np.array([bool(p & held_generators) for p in pairs])
    want_train = np.array([bool(p & training) for p in pairs])
    contested = set(photos[want_held]) & set(photos[want_train])
    on_held = np.isin(photos, list((set(photos[want_held]) - contested) | _share(contested, params.held_out_share, rng)))
    held, train = want_held & on_held, want_train & ~on_held
    calibration = held & np.isin(photos, list(_share(set(photos[held]), params.val_fraction, rng)))
    scored = held & ~calibration
    original = rows.split.to_numpy()
    from_test = train & (original == "test")
    val = train & ((original == "val") | (from_test & np.isin(photos, list(_share(set(photos[from_test]),
                                                                                  params.val_fraction, rng)))))
    fold.train, fold.val = np.flatnonzero(train & ~val), np.flatnonzero(val)
    fold.calibration = np.flatnonzero(calibration)
    fold.test = {name: np.flatnonzero(scored & np.array([bool(p & set(generators)) for p in pairs]))
                 for name, generators in fold.held_out.items()}
    fold.photographs = {"held_out": len(set(photos[held])), "training": len(set(photos[train]))}
    fold.skipped = _why_not(rows, fold)
    return fold


def _why_not(rows: pd.DataFrame, fold: Fold) -> str | None:
    parts = {"training": fold.train, "validation": fold.val, **{f"held-out {n}": i for n, i in fold.test.items()}}
    for part, index in parts.items():
        counts = _counts(rows, index)
        if not counts["real"] or not counts["fake"]:
            return f"its {part} rows hold {counts['real']} real and {counts['fake']} fake: both classes are needed"
    return None


def counts(rows: pd.DataFrame, fold: Fold) -> dict[str, dict[str, int]]:
    """Real and fake rows on each part of a fold."""
    return {"train": _counts(rows, fold.train), "val": _counts(rows, fold.val),
            "calibration": _counts(rows, fold.calibration), **{n: _counts(rows, i) for n, i in fold.test.items()}}


def generators(rows: pd.DataFrame) -> list[str]:
    """The fake generators with rows."""
    return sorted(rows.generator[rows.label == 1].unique())


def leave_one_generator_out(rows: pd.DataFrame, pairs, photos, params) -> list[Fold]:
    """One fold per fake generator: held out, the others train."""
    found = generators(rows)
    return [split(rows, pairs, photos, Fold(LOGO, g, [o for o in found if o != g], {g: [g]}), params) for g in found]


def windows(rows: pd.DataFrame, params) -> tuple[list[list[str]], list[str]]:
    """The dated generators oldest first in windows of params.window, and the undated ones."""
    dated, undated = generator_dates.chronological(generators(rows), params.generator_dates)
    return [dated[i:i + params.window] for i in range(0, len(dated), params.window)], undated


def chronological(rows: pd.DataFrame, pairs, photos, params) -> list[Fold]:
    """Train on windows 0..k, judge window k+1 (immediate_future) and windows k+1 on (future)."""
    found, _ = windows(rows, params)
    folds = []
    for k in range(1, len(found)):
        held_out = {NEXT: found[k], LATER: [g for window in found[k:] for g in window]}
        folds.append(split(rows, pairs, photos, Fold(CHRONOLOGICAL, f"window{k}",
                                                     [g for window in found[:k] for g in window], held_out), params))
    return folds
