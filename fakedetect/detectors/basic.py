"""The registry's small kinds: k-NN (the notebook's and UnivFD's 1-NN), the Keras heads (the
notebook's FCNN, UnivFD's linear probe: fakedetect.detectors.keras_heads), a released UnivFD head,
and the fusion of other detectors' scores (docs/detectors.md "The kinds")."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
from scipy.special import expit

from fakedetect import atomic
from fakedetect.detectors import neighbours
from fakedetect.detectors.kind import KERAS, READS_MEMBERS, Kind
from fakedetect.params import detectors as detector_params
from fakedetect.stage import UserError

BANK = "bank.json"  # a k-NN detector's bank: the feature folder (relative to it) and the view's columns


class Knn(Kind):
    """Cosine k-NN against the training rows (params `nn`: k, and the search: exact numpy or faiss,
    or approximate faiss_ivf). P(fake) is the vote fraction of the k nearest (0 or 1 for k = 1:
    coarse); the ranking score the similarity to the nearest fake minus that to the nearest real;
    the decision the majority with neighbours.Neighbours.predict's tie rule. The bank is not copied:
    fitted on a feature folder's rows (inputs.source) it keeps their row numbers and maps the
    folder's features.npy when it scores."""

    Params = detector_params.KnnDetectorParams
    title = "nearest neighbours"
    p_fake = "the vote fraction of the k nearest (0 or 1 for k = 1); ranking by the similarity gap"

    @classmethod
    def published_as(cls, settings) -> str | None:
        return "notebook_nn" if settings.k == 1 else None  # the notebook published 1-NN only

    def fit(self, train, y_train, val, y_val) -> None:
        p = self.params
        if not ((y_train == 0).any() and (y_train == 1).any()):
            raise UserError(f"detectors.{self.name}: the training split must hold real and fake rows: they are the bank")
        if p.k > len(y_train):
            raise UserError(f"nn.k: {p.k} neighbours, but the bank has only {len(y_train)} training rows")
        if p.backend.startswith("faiss") and importlib.util.find_spec("faiss") is None:
            raise UserError(f"nn.backend: {p.backend} needs faiss, which is not installed (pip install faiss-cpu), "
                            "or choose numpy")
        self.labels = np.asarray(y_train, np.int64)
        if train.source is None:  # rows held in memory only: the bank is theirs
            self.folder, self.columns, self.rows = None, None, np.arange(len(y_train))
            self.matrix = np.ascontiguousarray(train.x, np.float32)
        else:
            self.folder, self.rows, self.columns = train.source.folder, train.source.rows, train.source.columns
            self.matrix = None
        self._index = None

    def bank(self) -> np.ndarray:
        """The matrix the bank's rows are in (memory-mapped, the view's columns)."""
        if self.matrix is None:
            from fakedetect.features import feature_files

            mapped = feature_files.open_matrix(self.folder)
            start, stop = self.columns
            self.matrix = mapped if (start, stop) == (0, mapped.shape[1]) else mapped[:, start:stop]
        return self.matrix

    def search(self, queries: np.ndarray) -> neighbours.Neighbours:
        """The one k-NN search, as nn.backend says: exact (numpy, faiss) or approximate (faiss_ivf,
        its index built once per fitted detector)."""
        p = self.params
        if p.backend in neighbours.APPROXIMATE:
            if self._index is None:
                self._index = neighbours.IvfBank(self.bank(), self.rows, self.labels, neighbours.Ivf(**p.ivf.model_dump()),
                                                 p.chunk_size)
            return self._index.search(queries, p.k)
        return neighbours.search(queries, self.bank(), self.labels, p.k, p.chunk_size, bank_rows=self.rows,
                                 backend=p.backend)

    def search_report(self, queries: np.ndarray) -> dict | None:
        if self.params.backend not in neighbours.APPROXIMATE:
            return None
        self.search(queries[:1])  # builds the index
        return self._index.recall(queries)

    def predict(self, inputs):
        found = self.search(inputs.x)
        return found.vote_fraction(self.params.k), found.score, found.predict(self.params.k)

    def state(self) -> dict:
        return {"labels": self.labels, "rows": self.rows, **({"bank": self.matrix} if self.folder is None else {})}

    def save_files(self, folder: Path) -> None:
        if self.folder is not None:  # where the bank is: relative to the saved detector, as the project moves
            atomic.write_json(folder / BANK, {"features": os.path.relpath(Path(self.folder).resolve(), folder.resolve()),
                                              "columns": list(map(int, self.columns))})

    def restore(self, arrays: dict, folder: Path) -> None:
        self.labels, self.rows, self._index = arrays["labels"], arrays["rows"], None
        self.matrix, self.folder, self.columns = arrays.get("bank"), None, None
        if self.matrix is None:
            found = json.loads((Path(folder) / BANK).read_text())
            self.folder, self.columns = Path(folder) / found["features"], tuple(found["columns"])
            if not (self.folder / "features.npy").is_file():
                raise UserError(f"{self.folder}/features.npy is missing: the k-NN detector {self.name} reads its "
                                "bank there; run the extract stage (dvc repro) or dvc pull")


class KerasHead(Kind):
    """The notebook's FCNN or UnivFD's linear probe (fakedetect.detectors.keras_heads), recipe from
    params `linear`: the head linear_train fits and saves as models/linear.keras."""

    order = KERAS

    def __init__(self, params, name: str):
        super().__init__(params, name)
        self.history = None  # per-epoch figures of the last fit

    def _linear_params(self):
        from fakedetect.params import LinearParams

        recipe = self.params.model_dump(exclude={"seed"})
        return LinearParams(head=self.head, seed=self.params.seed, **{self.head: recipe})

    def fit(self, train, y_train, val, y_val, callbacks=()) -> None:
        from fakedetect.detectors import keras_heads

        self.model, self.history = keras_heads.train(train.x, y_train, val.x, y_val, self._linear_params(), callbacks)

    def predict(self, inputs):
        from fakedetect.detectors import keras_heads

        p = keras_heads.predict(self.model, inputs.x)
        return p, p

    def state(self) -> dict:
        return {}

    def save_files(self, folder: Path) -> None:
        self.save_model(folder / "model.keras")

    def save_model(self, path: Path) -> None:
        from fakedetect.detectors import keras_heads

        keras_heads.save(self.model, path)

    def restore(self, arrays: dict, folder: Path) -> None:
        self.restore_model(Path(folder) / "model.keras")

    def restore_model(self, path: Path, dim: int | None = None) -> None:
        """The head saved at `path` (linear_train's models/linear.keras), for features of `dim` columns."""
        from fakedetect.detectors import keras_heads

        self.model = keras_heads.load(path)
        if dim is not None and self.model.input_shape[-1] != dim:
            raise UserError(f"{path} expects {self.model.input_shape[-1]} features but the backbone's have {dim}: "
                            "the head was trained on another backbone's features; run linear_train again (dvc repro)")


class Fcnn(KerasHead):
    Params = detector_params.FcnnDetectorParams
    head, published, title = "fcnn", "notebook_fcnn", "Keras FCNN"


class LinearProbe(KerasHead):
    Params = detector_params.LinearProbeDetectorParams
    head, published, title = "linear_probe", "univfd_linear_probe", "linear probe"
    in_sample = "its early stopping watches the validation accuracy"


class ExternalHead(Kind):
    """A released UnivFD head (fakedetect.detectors.univfd_head): nothing to fit."""

    Params = detector_params.ExternalHeadDetectorParams
    published, title = "univfd_linear_probe", "external linear head"

    def __init__(self, params, name: str):
        super().__init__(params, name)
        self.path, self.key = params.path, f"detectors.{name}.params.path"  # the key its errors name

    def fit(self, train, y_train, val, y_val) -> None:
        from fakedetect.detectors import univfd_head

        self.weight, self.bias = univfd_head.load(self.path, train.x.shape[1], self.key)

    def predict(self, inputs):
        p = expit(inputs.x.astype(np.float64) @ self.weight[0] + self.bias[0])
        return p, p

    def state(self) -> dict:
        return {"weight": self.weight, "bias": self.bias}

    def restore(self, arrays: dict, folder: Path) -> None:
        self.weight, self.bias = arrays["weight"], arrays["bias"]


class Fusion(Kind):
    """A logistic regression over other detectors' ranking scores, fitted on the validation split
    (its members are fitted on the training split); its validation figures and thresholds are
    cross-fitted (registry.fit), so they are out-of-sample."""

    Params = detector_params.FusionDetectorParams
    order, fits_on_validation, title = READS_MEMBERS, True, "fusion of detectors"

    def __init__(self, params, name: str):
        super().__init__(params, name)
        self.fused, self.C = list(params.members), params.C

    @classmethod
    def members(cls, settings) -> list[str]:
        return list(settings.members)

    @classmethod
    def with_members(cls, params: dict, members: list[str]) -> dict:
        return {**params, "members": list(members)}

    @classmethod
    def cannot_fit(cls, settings, y_train, y_val) -> str | None:
        if not ((y_val == 0).any() and (y_val == 1).any()):
            return "a fusion is fitted on the validation split, which needs real and fake rows"
        return None

    def _stack(self, inputs) -> np.ndarray:
        return np.stack([inputs.members[m] for m in self.fused], axis=1).astype(np.float64)

    def fit(self, train, y_train, val, y_val) -> None:
        from sklearn.linear_model import LogisticRegression

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
