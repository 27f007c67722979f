"""Train every enabled level, judge each on its own test rows, then judge the 3-way hierarchy
(real / GAN / diffusion: level 1, then level 2 for what level 1 calls fake) on the rows that no
level trained or validated on."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from fakedetect import published
from fakedetect.attribution.card import LevelCard, ModelCard
from fakedetect.attribution.data import hierarchy_rows, prepare
from fakedetect.attribution.levels import HIERARCHY_CLASSES, HIERARCHY_LEVELS, LEVELS, hierarchy_decision
from fakedetect.attribution.network import predicted_class
from fakedetect.attribution.reports import confusion_rows, multiclass_report
from fakedetect.attribution.training import ImageBank, make_inputs, new_model, predict, train_level
from fakedetect.params import AttributionParams


@dataclass
class Result:
    metrics: dict
    card: ModelCard
    models: dict[str, dict] = field(default_factory=dict)  # level -> state dict
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusions: dict[str, pd.DataFrame] = field(default_factory=dict)  # level/hierarchy -> actual, predicted
    images_per_s: dict[str, float] = field(default_factory=dict)


def run(rows: pd.DataFrame, p: AttributionParams, trunk: dict | None) -> Result:
    """Train every level, judge each on its test rows and the hierarchy on the rows no level saw."""
    torch.use_deterministic_algorithms(True)
    levels = prepare(rows, p)
    hierarchy = hierarchy_rows(levels, p.split.group_by)
    bank = ImageBank([*pd.concat([d.used_for_training() for d in levels.values()]).image,
                      *pd.concat([d.test for d in levels.values()]).image, *hierarchy.image])
    cache: dict[bytes, torch.Tensor] = {}
    metrics = {"model": {"arch": p.arch, "weights": p.weights, "frozen": list(p.freeze),
                         "reuse_frozen": p.reuse_frozen, "crop_size": p.crop_size},
               "published_note": published.ATTRIBUTION_NOTE}
    result = Result(metrics, ModelCard(p.arch, {}, family_level=HIERARCHY_LEVELS[1]))
    trained, inputs = {}, {}
    for name, data in levels.items():
        model, frozen = new_model(p, len(data.classes), trunk)
        inputs[name] = make_inputs(model, bank, p, cache)
        t = train_level(model, data, inputs[name], p, frozen)
        trained[name] = t.model
        result.histories[name] = t.history
        result.models[name] = t.model.state_dict()
        result.images_per_s[name] = t.images_per_s
        logits = predict(t.model, inputs[name], bank.index(data.test.image), p.batch_size)
        result.metrics[name] = {**data.level.report(data.test, logits, data.classes),
                                "published_acc": data.level.published, "data": data.split_counts(),
                                "epochs_run": len(t.history), "best_epoch": t.best_epoch}
        result.confusions[name] = confusion_rows(data.test.target.to_numpy(), predicted_class(logits).numpy(),
                                                 data.classes)
        result.card.levels[name] = LevelCard(f"{name}.pt", list(data.classes), model.fc.out_features)
    for name in LEVELS:
        result.metrics.setdefault(name, None)  # a level params turned off
    idx = bank.index(hierarchy.image)
    l1, l2 = (predicted_class(predict(trained[name], inputs[name], idx, p.batch_size)).numpy()
              for name in HIERARCHY_LEVELS)
    decision = hierarchy_decision(l1, l2)
    truth = hierarchy.target.to_numpy()
    result.metrics["hierarchy"] = multiclass_report(hierarchy, decision, HIERARCHY_CLASSES, "class")
    result.confusions["hierarchy"] = confusion_rows(truth, decision, HIERARCHY_CLASSES)
    return result
