"""The `noise_sensitivity` kind, training-free, RIGID-style (He et al. 2024): real photographs'
features move less under a little Gaussian pixel noise than generated images' do. The raw score
is 1 - cosine(features of x, features of x + noise of `sigma`); the noisy images are a seeded
perturbation (fakedetect.data.perturbations, `noise`), encoded once through the feature store.

P(fake) is a 1-D logistic fit of the raw score on the validation split (monotonic; its sign is
learned, so a backbone on which fakes are the more stable still ranks correctly); the ranking
score and the thresholds use that P. Nothing else is learned. Without real and fake validation
rows it cannot learn that sign, and it is skipped with that reason (never a silent slope of 1);
its validation figures are cross-fitted (registry.fit).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit

from fakedetect.detectors.kind import Kind
from fakedetect.params.detectors import NoiseSensitivityDetectorParams


def raw_score(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of each row with its noisy view."""
    clean, noisy = clean.astype(np.float64), noisy.astype(np.float64)
    norms = np.maximum(np.linalg.norm(clean, axis=1) * np.linalg.norm(noisy, axis=1), 1e-12)
    return 1.0 - (clean * noisy).sum(1) / norms


class NoiseSensitivity(Kind):
    Params = NoiseSensitivityDetectorParams
    fits_on_validation, title = True, "noise sensitivity"

    def __init__(self, params, name: str):
        super().__init__(params, name)
        self.sigma = params.sigma

    @classmethod
    def noisy_views(cls, settings) -> list[tuple[float, int]]:
        return [(settings.sigma, settings.seed)]

    @classmethod
    def cannot_fit(cls, settings, y_train, y_val) -> str | None:
        if not ((y_val == 0).any() and (y_val == 1).any()):
            return ("it learns the sign and scale of its score on the validation split, which needs real and "
                    "fake rows")
        return None

    def _raw(self, inputs) -> np.ndarray:
        return raw_score(inputs.x, inputs.noisy[self.sigma])

    def fit(self, train, y_train, val, y_val) -> None:
        """The 1-D logistic map raw score -> P(fake), on the validation split (cannot_fit: both classes)."""
        from sklearn.linear_model import LogisticRegression

        raw = self._raw(val)
        scale = max(float(raw.std()), 1e-12)
        fitted = LogisticRegression().fit((raw / scale)[:, None], y_val)
        self.slope = np.array([fitted.coef_[0, 0] / scale])
        self.intercept = fitted.intercept_

    def predict(self, inputs):
        p = expit(self._raw(inputs) * self.slope[0] + self.intercept[0])
        return p, p

    def state(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}

    def restore(self, arrays: dict, folder: Path) -> None:
        self.slope, self.intercept = arrays["slope"], arrays["intercept"]
