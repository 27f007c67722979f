"""Engines that turn a list of image files into features: the one place where extract_clip and
`fakedetect predict` encode images (`extract.engine`).

- `local`: this process encodes while loader processes read, verify and centre-crop the next
  batches (decoding hidden behind the model).
- `ray`: a Ray Data pipeline on a Ray instance or cluster (fakedetect.features.ray_engine).

Both engines cut the list into the same batches and run the same operations on them (the uint8
crops of each item's crop policy, fakedetect.features.crops: by default UnivFD's centre crop; then
the backbone's transform and encoder on all the batch's crops, and the mean of each image's crops),
so on one kind of device they give bit-identical features. The caller writes what comes back (the
feature store, the predictions), so resuming and incremental runs do not depend on the engine: Ray
restarts a lost actor and retries its batch; a killed caller loses only the batches in flight.
"""
from __future__ import annotations

import torch  # noqa: I001  before anything that could import TensorFlow: the reverse order segfaults

from typing import Union

from fakedetect.features import backbones
from fakedetect.features.local_engine import Encoded, Item, LocalEngine, ShardWriter
from fakedetect.features.ray_engine import RayEngine  # Ray itself loads only when a RayEngine starts
from fakedetect.params import ExtractParams

# What callers build (Item), get back (Encoded) and hand to an encoder (ShardWriter), from one place.
__all__ = ["Encoded", "Engine", "Item", "LocalEngine", "RayEngine", "ShardWriter", "create"]

Engine = Union[LocalEngine, RayEngine]


def create(p: ExtractParams) -> Engine:
    """The engine `extract.engine` names; close() it when done (it shuts down a Ray it started)."""
    return RayEngine(p) if p.engine == "ray" else LocalEngine(backbones.create(p))
