"""Noisy views of the feature rows' images: each image with seeded Gaussian pixel noise (the `noise`
perturbation of fakedetect.data.perturbations), encoded through the feature store exactly as
robustness encodes its perturbed images, so each (image, sigma, seed) is encoded once ever."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from fakedetect.data import perturbations
from fakedetect.features import engines, extract
from fakedetect.features.engines import Engine, Item
from fakedetect.features.feature_store import FeatureStore, store_root
from fakedetect.params import Perturbation


def unavailable(rows: pd.DataFrame) -> str | None:
    """Why these rows' images cannot be read again (None when they can)."""
    if ("image" not in rows or "image_sha256" not in rows or rows.image.isna().any()
            or (rows.image.astype(str).str.strip() == "").any()):
        return "its noisy views need the images, and imported features have none (images: [])"
    missing = [path for path in rows.image if not os.path.isfile(path)]
    if missing:
        return f"its noisy views need the images, and {len(missing)} are missing (e.g. {missing[0]}): dvc pull"
    return None


def features(rows: pd.DataFrame, sigma: float, seed: int, engine: Engine, store: FeatureStore, batch_size: int,
             loader_workers: int) -> tuple[np.ndarray | str, int]:
    """(the noisy features, row-aligned, or why there are none; how many images this call encoded)."""
    why = unavailable(rows)
    if why:
        return why, 0
    noise = Perturbation(noise=sigma, noise_seed=seed or None)
    keys = [perturbations.key(sha256, noise) for sha256 in rows.image_sha256]
    items = {key: Item(path, sha256, noise) for key, path, sha256 in zip(keys, rows.image, rows.image_sha256)}
    return encoded_rows(keys, items, engine, store, batch_size, loader_workers, f"noisy views, sigma {sigma:g}")


def encoded_rows(keys: list[str], items: dict[str, Item], engine: Engine, store: FeatureStore, batch_size: int,
                 loader_workers: int, desc: str) -> tuple[np.ndarray | str, int]:
    """(the features of each key in order, or why some item could not be read; how many were encoded now)."""
    encoded = extract.encode_missing(items, engine, store, batch_size, loader_workers, desc=desc)
    if encoded.problems:
        return f"{len(encoded.problems)} images could not be read: {encoded.messages[0]}", encoded.computed
    return np.stack([encoded.features[key] for key in keys]).astype(np.float32, copy=False), encoded.computed


class NoisyViews:
    """The noisy features of some rows; the backbone is built only when a noisy view is asked for."""

    def __init__(self, params, rows):
        self.params, self.rows, self.engine, self.computed = params, rows, None, 0

    def __call__(self, sigma: float, seed: int, indices):
        rows = self.rows.iloc[indices]
        why = unavailable(rows)
        if why:
            return why
        found, computed = features(rows, sigma, seed, *self.encoder())
        self.computed += computed
        return found

    def encoder(self) -> tuple[Engine, FeatureStore, int, int]:
        """The run's backbone (built on first use), its feature store, batch size and loader processes."""
        p = self.params.extract
        if self.engine is None:
            self.engine = engines.create(p)
        return self.engine, FeatureStore(store_root(p.store), self.engine.identity, p.store_dtype), p.batch_size, \
            p.loader_workers

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
