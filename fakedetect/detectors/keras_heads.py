"""Keras heads on frozen features: the notebook's FCNN and UnivFD's linear probe.

The only module that imports Keras (TensorFlow). Importing torchvision or open_clip afterwards
segfaults through triton (docs/architecture.md "Environment facts worth knowing"), which this module
keeps out once Keras is loaded; stage scripts still import torch first. Training is seeded and runs
TensorFlow's deterministic ops: two runs on the same machine give the same model and the same scores.
"""
from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from fakedetect import atomic, keep_triton_out_after_tensorflow
from fakedetect.runtime import tensorflow_logs
from fakedetect.params import FcnnRecipe, LinearParams, LinearProbeRecipe

with tensorflow_logs.filtered():  # TensorFlow's start-up log off stderr
    import keras
    import tensorflow as tf
keep_triton_out_after_tensorflow()  # a backbone built later in the process (compare's aligned views) still imports

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
log = logging.getLogger("classifiers")


def build(head: str, dim: int, recipe: FcnnRecipe | LinearProbeRecipe,
          standardize_on: np.ndarray | None = None) -> keras.Model:
    """The compiled head: a sigmoid output on `dim` features, binary cross-entropy. With
    `standardize_on` (training rows), the linear probe first standardises its inputs with their
    statistics: a Normalization layer, so the saved model carries them."""
    inputs = keras.Input((dim,), name="features")
    if head == "fcnn":
        hidden = keras.layers.Dense(recipe.units, activation="relu", name="hidden")(inputs)
        outputs = keras.layers.Dense(1, activation="sigmoid", name="fake_probability")(hidden)
        optimizer = keras.optimizers.Adam(recipe.learning_rate)
    else:
        features = inputs if standardize_on is None else standardization(standardize_on)(inputs)
        # UnivFD initialises its fc layer from N(0, 0.02) and trains it with AdamW.
        outputs = keras.layers.Dense(1, activation="sigmoid", name="fake_probability",
                                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))(features)
        optimizer = keras.optimizers.AdamW(recipe.learning_rate, weight_decay=recipe.weight_decay)
    model = keras.Model(inputs, outputs, name=head)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def standardization(rows: np.ndarray) -> keras.layers.Normalization:
    """(x - mean) / std per feature, the statistics of `rows` (in float64); a feature constant on
    the rows keeps its scale (std 1) rather than being blown up by a zero std."""
    rows = np.asarray(rows, np.float64)
    variance = rows.var(axis=0)
    return keras.layers.Normalization(mean=rows.mean(axis=0).astype(np.float32),
                                      variance=np.where(variance > 0, variance, 1.0).astype(np.float32),
                                      name="standardize")


class EpochLog(keras.callbacks.Callback):
    """Adds the epoch's learning rate to its logs and logs one line per epoch."""

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{key} {value:.4g}" for key, value in sorted(logs.items())))


class UnivfdSchedule(keras.callbacks.Callback):
    """UnivFD's schedule: after `patience` epochs without a gain of `min_delta` in the monitored
    accuracy, divide the learning rate by 10; stop when it would fall below `min_lr`. The weights
    of the best epoch are kept."""

    def __init__(self, monitor: str, patience: int, min_delta: float, min_lr: float):
        super().__init__()
        self.monitor, self.patience, self.min_delta, self.min_lr = monitor, patience, min_delta, min_lr

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights = -np.inf, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = logs[self.monitor]
        if value > self.best + self.min_delta:
            self.best, self.wait, self.best_weights = value, 0, self.model.get_weights()
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        lr = logs["learning_rate"] / 10
        if lr * (1 + 1e-4) < self.min_lr:  # the tolerance absorbs float32 rounding of the lr
            log.info("no gain in %s for %d epochs at the smallest learning rate: stopping", self.monitor, self.wait)
            self.model.stop_training = True
        else:
            log.info("no gain in %s for %d epochs: learning rate %.1e", self.monitor, self.wait, lr)
            self.model.optimizer.learning_rate.assign(lr)
            self.wait = 0

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def train(features: np.ndarray, labels: np.ndarray, val_features: np.ndarray, val_labels: np.ndarray,
          p: LinearParams, callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> tuple[keras.Model, pd.DataFrame]:
    """Train the head chosen in params; return it and its per-epoch history. `callbacks` (a
    training log) see each epoch's logs after the learning rate is added to them.

    Without validation rows the validation columns are empty and the linear probe's
    schedule watches the training accuracy instead.
    """
    keras.utils.set_random_seed(p.seed)
    tf.config.experimental.enable_op_determinism()
    recipe = p.recipe
    standardize = p.head == "linear_probe" and recipe.standardize
    model = build(p.head, features.shape[1], recipe, features if standardize else None)
    validation = (val_features, val_labels.astype(np.float32)) if len(val_labels) else None
    schedule = [EpochLog()]
    if p.head == "linear_probe":
        monitor = "val_accuracy" if validation else "accuracy"
        schedule.append(UnivfdSchedule(monitor, recipe.patience, recipe.min_delta, recipe.min_lr))
    fit = model.fit(features, labels.astype(np.float32), batch_size=recipe.batch_size, epochs=recipe.epochs,
                    validation_data=validation, shuffle=True, callbacks=[*schedule, *callbacks], verbose=0)
    history = pd.DataFrame(fit.history).reindex(columns=HISTORY_COLUMNS[1:])
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return model, history.round(6)


def predict(model: keras.Model, features: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Probability that each row is fake. predict_on_batch per chunk of rows: the same compiled
    function as model.predict, without its ~40 ms of set-up per call (predict scores small batches)."""
    parts = [np.asarray(model.predict_on_batch(features[i:i + chunk])) for i in range(0, len(features), chunk)]
    return np.concatenate(parts)[:, 0].astype(np.float64) if parts else np.empty(0)


def save(model: keras.Model, path: str | os.PathLike) -> None:
    """Save in Keras's `.keras` format, atomically, with the same bytes for the same model on any
    day and in any process (`reproducible_archive`)."""
    with tempfile.TemporaryDirectory(prefix="fakedetect-keras-") as folder:
        staged = Path(folder) / "model.keras"  # Keras insists on the extension
        model.save(staged)
        atomic.write_bytes(path, reproducible_archive(staged.read_bytes()))


# What the saving time becomes: the zip format's earliest date, as Keras already writes for
# two of its three entries (reproducible-builds practice; Keras's file editor reads the key).
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def _renumber_shared_objects(config, numbers: dict) -> None:
    """Replace each `shared_object_id` (a Python id(), a memory address that changes with every
    process) by its rank of first appearance: objects shared before stay shared."""
    if isinstance(config, dict):
        if "shared_object_id" in config:
            config["shared_object_id"] = numbers.setdefault(config["shared_object_id"], len(numbers))
        for value in config.values():
            _renumber_shared_objects(value, numbers)
    elif isinstance(config, list):
        for value in config:
            _renumber_shared_objects(value, numbers)


def reproducible_archive(archive: bytes) -> bytes:
    """A `.keras` zip without what Keras writes of the moment of saving: every entry's date and
    metadata.json's `date_saved` fixed, config.json's shared-object ids renumbered; weights,
    order and attributes kept."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "{:04d}-{:02d}-{:02d}@{:02d}:{:02d}:{:02d}".format(*FIXED_DATE)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                config = json.loads(data)
                _renumber_shared_objects(config, {})
                data = json.dumps(config).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE)
            entry.compress_type, entry.external_attr = info.compress_type, info.external_attr
            target.writestr(entry, data)
    return out.getvalue()


def load(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` model without running any code stored in it."""
    return keras.models.load_model(path, safe_mode=True)
