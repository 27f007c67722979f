"""Stage compare: every detector of params `detectors` fitted on the stored features and compared under
one protocol -> metrics/compare.json (a few figures per detector), reports/compare.json (every figure
per test set, each detector's thresholds and params), plots/compare/*.csv (drawn by dvc plots) and
the fitted detectors under models/detectors/<name>/ (read by `fakedetect predict --detector`).

No image is decoded when the features exist: only a noise-sensitivity detector reads the images
again, for its noisy views, each encoded once through the feature store (docs/detectors.md "The compare stage").
The linear stages' head is not fitted again: the detector of kind linear.head on the whole row is
linear_train's models/linear.keras, calibrated here; the k-NN detectors refer to the training rows
of data/features rather than copying them.
"""
from fakedetect.runtime import cpu_numerics  # noqa: F401  first: pins TensorFlow's kernels and instruction sets before numpy, torch and TensorFlow load
import logging
import shutil
from pathlib import Path

from fakedetect import atomic, stage
from fakedetect.features import feature_files  # torch before any Keras head
from fakedetect.features.noisy_views import NoisyViews
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.evaluation import compare, metrics
from fakedetect.artifacts import (COMPARE_METRICS, COMPARE_PLOTS, COMPARE_REPORT, DETECTOR_MODELS, FEATURES,
                                  LINEAR_MODEL)
from fakedetect.params import load_params
from fakedetect.stage import UserError

log = logging.getLogger("compare")


def linear_train_head(spec, dim: int):
    """linear_train's head (models/linear.keras) as a model of its kind."""
    model = registry.build(pipeline_detectors.LINEAR, spec)
    model.restore_model(LINEAR_MODEL, dim)
    return model


def main() -> None:
    params = load_params()
    matrix, rows = feature_files.load_features(FEATURES)
    if not (rows.split == "test").any():
        raise UserError(f"{FEATURES}: no test rows to compare on")
    layers = feature_files.load_layers(FEATURES, matrix.shape[1])
    noisy = NoisyViews(params, rows)
    linear = pipeline_detectors.linear_spec(params)
    # linear_train's head, loaded when compare's run order reaches it (Keras after the torch kinds)
    trained = not params.linear.external_head and Path(LINEAR_MODEL).is_file()
    reuse = {name: lambda: linear_train_head(linear, matrix.shape[1]) for name, spec in params.detectors.items()
             if trained and spec == linear}
    try:
        outcome = compare.run(matrix, rows, layers, params.detectors, noisy, reuse, FEATURES)
    finally:
        noisy.close()
    if not outcome.fitted:
        raise UserError("no configured detector could run: " + "; ".join(f"{n}: {w}" for n, w in outcome.skipped.items()))
    shutil.rmtree(DETECTOR_MODELS, ignore_errors=True)
    for name, detector in outcome.fitted.items():
        detector.save(Path(DETECTOR_MODELS) / name)
    atomic.write_json(COMPARE_REPORT, {"default": outcome.default, "detectors": outcome.reports,
                                       "skipped": outcome.skipped,
                                       "layers": [list(layer) for layer in layers],
                                       "ece_bins": metrics.ECE_BINS})
    atomic.write_json(COMPARE_METRICS, compare.headline(outcome))
    sets, bars = compare.tables(outcome)
    atomic.write_csv(f"{COMPARE_PLOTS}/sets.csv", sets)
    atomic.write_csv(f"{COMPARE_PLOTS}/headline.csv", bars)
    for name, seconds in outcome.seconds.items():  # logged, never a DVC output
        log.info("%s: fit %.2f s, score %.2f s", name, seconds["fit"], seconds["score"])
    log.info("%d detectors compared, %d skipped; %d noisy views encoded in this run",
             len(outcome.fitted), len(outcome.skipped), noisy.computed)


if __name__ == "__main__":
    stage.run(main)
