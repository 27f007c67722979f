"""What a verdict rests on: the nearest training images of the k-NN bank, and their thumbnails.

Thumbnails are served by the bank row's integer index; the file is the row's own preprocessed
image (data/features/rows.csv `image`), never a path from a request."""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fakedetect.detectors import neighbours
from fakedetect.stage import UserError

THUMB_SIDE = 112
LABEL_NAMES = {0: "real", 1: "fake"}


class Evidence:
    """The k-NN bank (the training rows of the run's features) and a small thumbnail cache."""

    def __init__(self, project: Path, matrix: np.ndarray, rows: pd.DataFrame, k: int = 5,
                 chunk_size: int = 4096, cache_size: int = 512):
        self.project, self.matrix, self.rows, self.k, self.chunk_size = project, matrix, rows, k, chunk_size
        self.bank = np.flatnonzero(rows.split.to_numpy() == "train")
        if not len(self.bank):
            raise UserError("data/features has no training rows: the evidence shows the nearest of them")
        self._in_bank = set(int(i) for i in self.bank)
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def nearest(self, features: np.ndarray) -> list[list[dict]]:
        """For each query, its k nearest bank rows: row index, label, generator, cosine similarity."""
        indices, similarities = neighbours.top_k(features, self.matrix, self.k, self.chunk_size, bank_rows=self.bank)
        found = []
        for row_indices, row_similarities in zip(indices, similarities):
            found.append([{"row": int(i), "label": LABEL_NAMES.get(int(self.rows.label.iat[i]), str(self.rows.label.iat[i])),
                           "generator": str(self.rows.generator.iat[i]), "similarity": round(float(s), 4),
                           "thumbnail": f"api/thumbnail/{int(i)}"}
                          for i, s in zip(row_indices, row_similarities) if i >= 0])
        return found

    def thumbnail(self, row: int) -> bytes | None:
        """A JPEG thumbnail of a bank row's preprocessed image; None for a row outside the bank or
        an image that is gone."""
        if row not in self._in_bank:
            return None
        with self._lock:
            if row in self._cache:
                self._cache.move_to_end(row)
                return self._cache[row]
        path = self.project / str(self.rows.image.iat[row])
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((THUMB_SIDE, THUMB_SIDE))
                buffer = io.BytesIO()
                im.save(buffer, format="JPEG", quality=85)
        except (OSError, ValueError):
            return None
        data = buffer.getvalue()
        with self._lock:
            self._cache[row] = data
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data
