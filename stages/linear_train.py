"""Stage linear_train: data/features -> models/linear.keras and its per-epoch training curve.

Trains the head chosen in params (the notebook's FCNN, or UnivFD's linear probe) on
the training split; the validation split is scored after every epoch.
"""
import logging

import numpy as np

from fakedetect import atomic, classifiers, features, stage
from fakedetect.artifacts import FEATURES, LINEAR_HISTORY, LINEAR_MODEL
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("linear_train")


def main() -> None:
    p = load_params().linear
    matrix, rows = features.load_features(FEATURES)
    labels, split = rows.label.to_numpy(), rows.split.to_numpy()
    train, val = split == "train", split == "val"
    if not ((labels[train] == 0).any() and (labels[train] == 1).any()):
        raise UserError(f"{FEATURES}: the training split must hold real and fake rows")
    if not val.any():
        log.warning("no validation split: the validation columns of %s stay empty%s", LINEAR_HISTORY,
                    "; the linear probe's schedule watches the training accuracy" if p.head == "linear_probe" else "")
    model, history = classifiers.train(matrix[train], labels[train], matrix[val], labels[val], p)
    classifiers.save(model, LINEAR_MODEL)
    atomic.write_csv(LINEAR_HISTORY, history)
    last = history.iloc[-1]
    log.info("%s: %d epochs on %d rows; last epoch: accuracy %.4f, validation accuracy %s",
             p.head, len(history), train.sum(), last.accuracy,
             "-" if np.isnan(last.val_accuracy) else f"{last.val_accuracy:.4f}")


if __name__ == "__main__":
    stage.run(main)
