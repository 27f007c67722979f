"""Stage resnet_attribution: preprocessed images -> a ResNet per level (level 1 real vs fake,
level 2 GAN vs diffusion, level 3 the generator when enabled) under models/attribution/,
metrics/attribution.json, per-epoch training CSVs and confusion matrices (CSV for DVC's
confusion template, and plots/attribution.png)."""
import io
import logging
import time
from pathlib import Path

from fakedetect import cpu_numerics  # noqa: F401  first: pins the CPU instruction sets before numpy and torch load

import torch

from fakedetect import atomic, attribution, layouts, plots, stage
from fakedetect.artifacts import (ATTRIBUTION_METRICS, ATTRIBUTION_MODELS, ATTRIBUTION_PICTURE, ATTRIBUTION_PLOTS,
                                  PREPROCESSED_MANIFEST)
from fakedetect.params import load_params

log = logging.getLogger("resnet_attribution")


def main() -> None:
    p = load_params().attribution
    trunk = attribution.load_trunk_weights(p.arch, p.weights)  # before any work: fails fast offline
    rows = layouts.read_manifest(PREPROCESSED_MANIFEST)
    start = time.perf_counter()
    result = attribution.run(rows, p, trunk)
    models, curves = Path(ATTRIBUTION_MODELS), Path(ATTRIBUTION_PLOTS)
    for level, state in result.models.items():
        buffer = io.BytesIO()  # saved from memory: a file name would be recorded inside the archive
        torch.save(state, buffer)
        atomic.write_bytes(models / result.card["levels"][level]["file"], buffer.getvalue())  # as the card says
    atomic.write_json(models / attribution.MODEL_CARD, result.card)
    for level, history in result.histories.items():
        atomic.write_csv(curves / f"{level}_training.csv", history)
    for name, frame in result.confusions.items():
        atomic.write_csv(curves / f"{name}_confusion.csv", frame)
    matrices = {name: (result.metrics[name]["classes"], result.metrics[name]["confusion"])
                for name in result.confusions}
    plots.confusion_matrices(matrices, ATTRIBUTION_PICTURE, f"attribution, {p.arch} (weights: {p.weights})")
    atomic.write_json(ATTRIBUTION_METRICS, result.metrics)
    log.info("done in %.0f s; training %s images/s", time.perf_counter() - start,
             {k: round(v, 1) for k, v in result.images_per_s.items()})


if __name__ == "__main__":
    stage.run(main)
