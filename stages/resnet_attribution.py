"""Stage resnet_attribution: preprocessed images -> a ResNet per level (level 1 real vs fake,
level 2 GAN vs diffusion, level 3 the generator when enabled) under models/attribution/,
metrics/attribution.json (headline figures per level), reports/attribution.json (all figures), a
training log per level (DVCLive: per-epoch loss and accuracy, training and validation, and the best
epoch's figures) and confusion matrices (CSV for DVC's confusion template, and plots/attribution.png)."""
import io
import logging
import time
from pathlib import Path

from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins the CPU instruction sets before numpy and torch load

import torch

from fakedetect import atomic, stage
from fakedetect.data import manifests
from fakedetect.evaluation import metrics, plots
from fakedetect.attribution import hierarchy, network
from fakedetect.artifacts import (ATTRIBUTION_METRICS, ATTRIBUTION_MODELS, ATTRIBUTION_PICTURE, ATTRIBUTION_PLOTS,
                                  ATTRIBUTION_REPORT, ATTRIBUTION_TRAINING_LOG, PREPROCESSED_MANIFEST)
from fakedetect.params import load_params
from fakedetect.runtime.training_log import TrainingLog

log = logging.getLogger("resnet_attribution")


def figures(row: dict) -> dict:
    """An epoch's history row under the training log's names: train_loss -> train/loss, val_* -> eval/*."""
    return {name.replace("train_", "train/").replace("val_", "eval/"): value
            for name, value in row.items() if name not in ("epoch", "best")}


def main() -> None:
    p = load_params().attribution
    trunk = network.load_trunk_weights(p.arch, p.weights)  # before any work: fails fast offline
    rows = manifests.read_manifest(PREPROCESSED_MANIFEST)
    start = time.perf_counter()
    training_log = TrainingLog(ATTRIBUTION_TRAINING_LOG)
    result = hierarchy.run(rows, p, trunk,
                           lambda level, row: training_log.epoch(figures(row), row["epoch"] - 1, f"{level}/"))
    models, curves = Path(ATTRIBUTION_MODELS), Path(ATTRIBUTION_PLOTS)
    for level, state in result.models.items():
        buffer = io.BytesIO()  # saved from memory: a file name would be recorded inside the archive
        torch.save(state, buffer)
        atomic.write_bytes(models / result.card.levels[level].file, buffer.getvalue())  # as the card says
    result.card.write(models)
    best = {}
    for level, history in result.histories.items():
        row = history[history.best].iloc[0]
        best |= {f"{level}/epochs": len(history), f"{level}/best/step": int(row.epoch) - 1,
                 **{f"{level}/best/{name}": float(value) for name, value in figures(row.to_dict()).items()
                    if name.startswith("eval/")}}
    training_log.close(best)
    for name, frame in result.confusions.items():
        atomic.write_csv(curves / f"{name}_confusion.csv", frame)
    matrices = {name: (result.metrics[name]["classes"], result.metrics[name]["confusion"])
                for name in result.confusions if result.metrics[name] is not None}
    plots.confusion_matrices(matrices, ATTRIBUTION_PICTURE, f"attribution, {p.arch} (weights: {p.weights})")
    atomic.write_json(ATTRIBUTION_REPORT, result.metrics)
    atomic.write_json(ATTRIBUTION_METRICS, metrics.attribution_headline(result.metrics))
    log.info("done in %.0f s; training %s images/s", time.perf_counter() - start,
             {k: round(v, 1) for k, v in result.images_per_s.items()})


if __name__ == "__main__":
    stage.run(main)
