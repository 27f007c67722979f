"""Train every enabled level, judge each on its own test rows, then judge the 3-way hierarchy
(real / GAN / diffusion: level 1, then level 2 for what level 1 calls fake) on the rows that no
level trained or validated on."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch

from fakedetect.evaluation import published
from fakedetect.attribution.card import LevelCard, ModelCard
from fakedetect.attribution.data import hierarchy_rows, prepare
from fakedetect.attribution.levels import HIERARCHY_LEVELS, LEVELS, hierarchy_decision
from fakedetect.attribution.network import predicted_class
from fakedetect.attribution.reports import confusion_rows, disabled_confusion, multiclass_report
from fakedetect.attribution.cache import ImageBank, RecordFile, make_inputs
from fakedetect.attribution.training import new_model, predict, predict_images, train_level
from fakedetect.params import AttributionParams

log = logging.getLogger("attribution")


@dataclass
class Result:
    metrics: dict
    card: ModelCard
    models: dict[str, dict] = field(default_factory=dict)  # level -> state dict
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusions: dict[str, pd.DataFrame] = field(default_factory=dict)  # level/hierarchy -> actual, predicted
    images_per_s: dict[str, float] = field(default_factory=dict)


def run(rows: pd.DataFrame, p: AttributionParams, trunk: dict | None,
        on_epoch: Callable[[str, dict], None] = lambda level, row: None) -> Result:
    """Train every level, judge each on its test rows and the hierarchy on the rows no level saw;
    `on_epoch(level, history row)` after each epoch (the training log)."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(p.threads)  # the trained weights depend on the thread count
    levels = prepare(rows, p)
    judged = hierarchy_rows(rows, levels, p)
    bank = ImageBank(list(pd.concat([d.used_for_training() for d in levels.values()]).image))
    cache: dict[bytes, RecordFile] = {}
    metrics = {"model": {"arch": p.arch, "weights": p.weights, "frozen": list(p.freeze),
                         "reuse_frozen": p.reuse_frozen, "crop_size": p.crop_size},
               "published_note": published.ATTRIBUTION_NOTE}
    result = Result(metrics, ModelCard(p.arch, {}, family_level=HIERARCHY_LEVELS[1]))
    trained = {}
    for name, data in levels.items():
        model, frozen = new_model(p, len(data.classes), trunk)
        inputs = make_inputs(model, bank, p, cache)
        t = train_level(model, data, inputs, p, frozen, lambda row, name=name: on_epoch(name, row))
        trained[name] = t.model
        result.histories[name] = t.history
        result.models[name] = t.model.state_dict()
        result.images_per_s[name] = t.images_per_s
        val_logits = predict(t.model, inputs, bank.index(data.val.image), p.batch_size)
        logits = predict_images(t.model, list(data.test.image), bank.shape, p.batch_size)
        result.metrics[name] = {**data.level.report(data.test, logits, data.classes, data.val, val_logits),
                                "published_acc": data.level.published, "data": data.split_counts(),
                                "epochs_run": len(t.history), "best_epoch": t.best_epoch}
        result.confusions[name] = confusion_rows(data.test.target.to_numpy(), predicted_class(logits).numpy(),
                                                 data.classes)
        result.card.levels[name] = LevelCard(f"{name}.pt", list(data.classes), model.fc.out_features)
    for name in [n for n in LEVELS if n not in levels]:  # turned off by params: its declared plot still draws
        result.metrics[name] = None
        result.confusions[name] = disabled_confusion(name)
    l1, l2 = (predicted_class(predict_images(trained[name], list(judged.rows.image), bank.shape,
                                             p.batch_size)).numpy() for name in HIERARCHY_LEVELS)
    decision = hierarchy_decision(l1, l2)
    truth = judged.rows.target.to_numpy()
    report = multiclass_report(judged.rows, decision, judged.classes, "class")
    if report["classes_without_test_rows"]:
        log.warning("hierarchy: no test rows of %s; its balanced accuracy averages %s only (set "
                    "attribution.hierarchy.test)", report["classes_without_test_rows"], report["balanced_acc_classes"])
    result.metrics["hierarchy"] = {**report, "rows_left_out": judged.left_out}
    result.confusions["hierarchy"] = confusion_rows(truth, decision, judged.classes)
    return result
