"""Stage linear_train: data/features -> models/linear.keras and its training log (DVCLive:
per-epoch loss and accuracy, training and validation, and the best epoch's figures).

Fits the registry detector of the kind named by linear.head (the notebook's FCNN, or UnivFD's
linear probe; recipe from params `linear`) on the training split; the validation split is scored
after every epoch. linear_eval scores it, and the compare stage reuses it rather than fitting it again.
"""
import logging

from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins TensorFlow's kernels and instruction sets before numpy and TensorFlow load

import numpy as np

from fakedetect import stage
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.features import feature_files
from fakedetect.artifacts import FEATURES, LINEAR_MODEL, LINEAR_TRAINING_LOG
from fakedetect.params import load_params
from fakedetect.stage import UserError
from fakedetect.runtime.training_log import TrainingLog

log = logging.getLogger("linear_train")


def main() -> None:
    params = load_params()
    p = params.linear
    matrix, rows = feature_files.load_features(FEATURES)
    labels, split = rows.label.to_numpy(), rows.split.to_numpy()
    train, val = split == "train", split == "val"
    if not ((labels[train] == 0).any() and (labels[train] == 1).any()):
        raise UserError(f"{FEATURES}: the training split must hold real and fake rows")
    if not val.any():
        log.warning("no validation split: %s logs training figures only%s", LINEAR_TRAINING_LOG,
                    "; the linear probe's schedule watches the training accuracy" if p.head == "linear_probe" else "")
    training_log = TrainingLog(LINEAR_TRAINING_LOG)
    spec = pipeline_detectors.linear_spec(params.model_copy(update={"linear": p.model_copy(update={"external_head": None})}))
    head = registry.build(pipeline_detectors.LINEAR, spec)
    log.info("fitting %s (the only fit of this head in a run: compare reuses %s)", p.head, LINEAR_MODEL)
    head.fit(registry.Inputs(matrix[train], [("all", matrix.shape[1])]), labels[train],
             registry.Inputs(matrix[val], [("all", matrix.shape[1])]), labels[val],
             callbacks=(training_log.keras_callback(),))
    head.save_model(LINEAR_MODEL)
    history = head.history
    split_name, column = ("eval", "val_") if val.any() else ("train", "")
    best = int(history[f"{column}accuracy"].idxmax())
    training_log.close({"epochs": len(history), "best/step": best,
                        f"best/{split_name}/accuracy": float(history[f"{column}accuracy"][best]),
                        f"best/{split_name}/loss": float(history[f"{column}loss"][best])})
    last = history.iloc[-1]
    log.info("%s: %d epochs on %d rows; last epoch: accuracy %.4f, validation accuracy %s",
             p.head, len(history), train.sum(), last.accuracy,
             "-" if np.isnan(last.val_accuracy) else f"{last.val_accuracy:.4f}")


if __name__ == "__main__":
    stage.run(main)
