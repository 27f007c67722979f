"""Stage protocols: the generalisation protocols of params `evaluation` (leave one generator out,
chronological windows) over the stored features and every detector of params `detectors` ->
reports/protocols.json (every fold, detector and held-out set; predict's default detector among those
the compare stage saved, chosen on held-out generators, with its threshold), metrics/protocols.json, metrics/protocols_worst.json
and metrics/protocols_next.json (per detector, the mean and the worst held-out AP, the next window's AP)
and plots/protocols/*.csv (drawn by dvc plots).

No image is encoded when the features exist: folds re-split the stored rows; only a noise-sensitivity
detector reads noisy views, from the feature store (docs/protocols.md).
"""
from fakedetect.runtime import cpu_numerics  # noqa: F401  first: the folds train Keras heads, blocks and the fusion as compare does, on the same pinned kernels
import logging

from fakedetect import atomic, stage
from fakedetect.features import feature_files  # torch before any Keras head
from fakedetect.features.noisy_views import NoisyViews
from fakedetect.evaluation import protocols
from fakedetect.artifacts import (DETECTOR_MODELS, FEATURES, PROTOCOLS_METRICS, PROTOCOLS_NEXT_METRICS,
                                  PROTOCOLS_PLOTS, PROTOCOLS_REPORT, PROTOCOLS_WORST_METRICS)
from fakedetect.params import load_params

log = logging.getLogger("protocols")


def main() -> None:
    params = load_params()
    matrix, rows = feature_files.load_features(FEATURES)
    layers = feature_files.load_layers(FEATURES, matrix.shape[1])
    noisy = NoisyViews(params, rows)
    try:
        report = protocols.run(matrix, rows, layers, params.detectors, noisy, params.evaluation,
                               demo=params.image_source == "demo", models=DETECTOR_MODELS)
    finally:
        noisy.close()
    atomic.write_json(PROTOCOLS_REPORT, report)
    headline = protocols.headline(report)
    for path, figure in ((PROTOCOLS_METRICS, "mean"), (PROTOCOLS_WORST_METRICS, "worst"), (PROTOCOLS_NEXT_METRICS, "next")):
        atomic.write_json(path, headline[figure])
    held_out, windows = protocols.tables(report)
    atomic.write_csv(f"{PROTOCOLS_PLOTS}/held_out.csv", held_out)
    atomic.write_csv(f"{PROTOCOLS_PLOTS}/windows.csv", windows)
    log.info("%d folds, %d noisy views encoded in this run (stored features: none encoded)",
             len(report["folds"]), noisy.computed)


if __name__ == "__main__":
    stage.run(main)
