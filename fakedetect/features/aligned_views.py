"""The format-aligned views of the test images (params `aligned`; docs/shortcuts.md "Format-aligned
evaluation"): each original test file (`rows.csv`'s `path`, `sha256`), real and fake alike, decoded,
re-encoded as the condition says (JPEG 96 by default, optionally resized to a common shorter side
first), then cropped as the clean test features were (`extract.test_crop`) and encoded through the
feature store like robustness's perturbed images: each (image, condition) encoded once, ever. A
noise-sensitivity detector's noisy view of an aligned image adds its noise after the re-encoding."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from fakedetect.data import perturbations
from fakedetect.features import crops
from fakedetect.features.engines import Item
from fakedetect.features.noisy_views import NoisyViews, encoded_rows


def unavailable(rows: pd.DataFrame) -> str | None:
    """Why these rows' original files cannot be re-encoded (None when they can)."""
    if "path" not in rows or "sha256" not in rows or rows.path.isna().any() or (rows.path.astype(str) == "").any():
        return "the aligned condition re-encodes the original test files, and imported features have none (images: [])"
    missing = [path for path in rows.path if not os.path.isfile(path)]
    if missing:
        return f"the aligned condition needs the original test files, and {len(missing)} are missing (e.g. {missing[0]}): dvc pull"
    return None


class AlignedViews(NoisyViews):
    """The noisy views of the rows' images (NoisyViews) and the aligned views of their original files."""

    def __init__(self, params, rows):
        super().__init__(params, rows)
        self.condition, self.aligned_computed = params.aligned.perturbation(), 0

    def aligned(self, indices: np.ndarray, noise: tuple[float, int] | None = None) -> np.ndarray | str:
        """The aligned features of these rows (with the noise (sigma, seed) added after the re-encoding), or why none."""
        rows = self.rows.iloc[indices]
        why = unavailable(rows)
        if why:
            return why
        point = self.condition if noise is None else self.condition.model_copy(
            update={"noise": noise[0], "noise_seed": noise[1] or None})
        crop = self.params.extract.test_crop
        keys = [crops.key(perturbations.key(sha256, point), crop) for sha256 in rows.sha256]
        items = {key: Item(path, sha256, point, crop) for key, path, sha256 in zip(keys, rows.path, rows.sha256)}
        found, computed = encoded_rows(keys, items, *self.encoder(), f"aligned {perturbations.name(point)}")
        self.aligned_computed += computed
        return found
