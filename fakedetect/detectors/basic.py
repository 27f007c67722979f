"""The registry's small kinds: k-NN (the notebook's and UnivFD's 1-NN), the Keras heads (the
notebook's FCNN, UnivFD's linear probe: fakedetect.detectors.keras_heads), a released UnivFD head,
and the fusion of other detectors' scores (docs/detectors.md "The kinds")."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit

from fakedetect.detectors import neighbours
from fakedetect.stage import UserError


class Knn:
    """Exact cosine k-NN against the training rows. P(fake) is the vote fraction of the k nearest
    (0 or 1 for k = 1: coarse); the ranking score is nn_eval's: the similarity to the nearest fake
    minus that to the nearest real."""

    def __init__(self, params, name: str):
        self.k, self.name = params.k, name

    def fit(self, train, y_train, val, y_val) -> None:
        if not ((y_train == 0).any() and (y_train == 1).any()):
            raise UserError(f"detectors.{self.name}: the training split must hold real and fake rows: they are the bank")
        if self.k > len(y_train):
            raise UserError(f"detectors.{self.name}.params.k: {self.k} neighbours, but the bank has {len(y_train)} rows")
        self.bank, self.labels = np.ascontiguousarray(train.x, np.float32), np.asarray(y_train, np.int64)

    def predict(self, inputs):
        found = neighbours.search(inputs.x, self.bank, self.labels, self.k)
        return vote_fraction(found, self.k), found.score

    def state(self) -> dict:
        return {"bank": self.bank, "labels": self.labels}

    def restore(self, arrays: dict, folder: Path) -> None:
        self.bank, self.labels = arrays["bank"], arrays["labels"]


def vote_fraction(found: neighbours.Neighbours, k: int) -> np.ndarray:
    """The share of fakes among the k nearest (the k best of the real and fake candidates)."""
    similarities = np.concatenate([found.real, found.fake], axis=1)
    is_fake = np.repeat([0.0, 1.0], found.real.shape[1])
    nearest = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
    return is_fake[nearest].mean(axis=1)


class KerasHead:
    """The notebook's FCNN or UnivFD's linear probe, trained as linear_train trains them."""

    def __init__(self, params, name: str):
        self.params, self.name = params, name
        self.head = "fcnn" if "units" in type(params).model_fields else "linear_probe"

    def _linear_params(self):
        from fakedetect.params import LinearParams

        recipe = self.params.model_dump(exclude={"seed"})
        return LinearParams(head=self.head, seed=self.params.seed, **{self.head: recipe})

    def fit(self, train, y_train, val, y_val) -> None:
        from fakedetect.detectors import keras_heads

        self.model, _ = keras_heads.train(train.x, y_train, val.x, y_val, self._linear_params())

    def predict(self, inputs):
        from fakedetect.detectors import keras_heads

        p = keras_heads.predict(self.model, inputs.x)
        return p, p

    def state(self) -> dict:
        return {}

    def save_files(self, folder: Path) -> None:
        from fakedetect.detectors import keras_heads

        keras_heads.save(self.model, folder / "model.keras")

    def restore(self, arrays: dict, folder: Path) -> None:
        from fakedetect.detectors import keras_heads

        self.model = keras_heads.load(folder / "model.keras")


class ExternalHead:
    """A released UnivFD head (fakedetect.detectors.univfd_head): nothing to fit."""

    def __init__(self, params, name: str):
        self.path, self.name = params.path, name

    def fit(self, train, y_train, val, y_val) -> None:
        from fakedetect.detectors import univfd_head

        self.weight, self.bias = univfd_head.load(self.path, train.x.shape[1], f"detectors.{self.name}.params.path")

    def predict(self, inputs):
        p = expit(inputs.x.astype(np.float64) @ self.weight[0] + self.bias[0])
        return p, p

    def state(self) -> dict:
        return {"weight": self.weight, "bias": self.bias}

    def restore(self, arrays: dict, folder: Path) -> None:
        self.weight, self.bias = arrays["weight"], arrays["bias"]


class Fusion:
    """A logistic regression over other detectors' ranking scores, fitted on the validation split
    (its members are fitted on the training split; the validation split also calibrates its
    thresholds, so they are in-sample)."""

    def __init__(self, params, name: str):
        self.members, self.C, self.name = list(params.members), params.C, name

    def _stack(self, inputs) -> np.ndarray:
        return np.stack([inputs.members[m] for m in self.members], axis=1).astype(np.float64)

    def fit(self, train, y_train, val, y_val) -> None:
        from sklearn.linear_model import LogisticRegression

        if not ((y_val == 0).any() and (y_val == 1).any()):
            raise UserError(f"detectors.{self.name}: a fusion is fitted on the validation split, which needs both classes")
        scores = self._stack(val)
        self.mean, self.scale = scores.mean(0), np.maximum(scores.std(0), 1e-12)
        fitted = LogisticRegression(C=self.C).fit((scores - self.mean) / self.scale, y_val)
        self.coef, self.intercept = fitted.coef_[0], fitted.intercept_

    def predict(self, inputs):
        logit = ((self._stack(inputs) - self.mean) / self.scale) @ self.coef + self.intercept[0]
        return expit(logit), logit

    def state(self) -> dict:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}

    def restore(self, arrays: dict, folder: Path) -> None:
        for key in ("mean", "scale", "coef", "intercept"):
            setattr(self, key, arrays[key])
