"""Stage compare: every detector of params `detectors` fitted on the stored features and compared under
one protocol -> metrics/compare.json (a few figures per detector), metrics/format_reliance.json (each
one's change when the test images' format is aligned), reports/compare.json (every figure per test set,
clean and aligned, each detector's thresholds and params, the sets' fingerprints), plots/compare/*.csv
(drawn by dvc plots) and the fitted detectors under models/detectors/<name>/ (read by `fakedetect predict
--detector`).

No image is decoded when the features exist but for two reasons, each image encoded once, ever, through
the feature store: a noise-sensitivity detector's noisy views (docs/detectors.md "The compare stage"), and
the format-aligned condition (params `aligned`): every detector again on the test images re-encoded alike,
beside its clean figures (docs/shortcuts.md "Format-aligned evaluation").
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
from fakedetect.features.aligned_views import AlignedViews
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.data import fingerprints
from fakedetect.evaluation import aligned, compare, metrics
from fakedetect.artifacts import (COMPARE_METRICS, COMPARE_PLOTS, COMPARE_REPORT, DETECTOR_MODELS, FEATURES,
                                  FORMAT_RELIANCE_METRICS, LINEAR_MODEL)
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
    views = AlignedViews(params, rows)
    linear = pipeline_detectors.linear_spec(params)
    # linear_train's head, loaded when compare's run order reaches it (Keras after the torch kinds)
    trained = not params.linear.external_head and Path(LINEAR_MODEL).is_file()
    reuse = {name: lambda: linear_train_head(linear, matrix.shape[1]) for name, spec in params.detectors.items()
             if trained and spec == linear}
    try:
        outcome = compare.run(matrix, rows, layers, params.detectors, views, reuse, FEATURES)
        format_aligned = aligned.run(outcome, rows, layers, views.aligned, params.aligned)
    finally:
        views.close()
    if not outcome.fitted:
        raise UserError("no configured detector could run: " + "; ".join(f"{n}: {w}" for n, w in outcome.skipped.items()))
    shutil.rmtree(DETECTOR_MODELS, ignore_errors=True)
    for name, detector in outcome.fitted.items():
        detector.save(Path(DETECTOR_MODELS) / name)
    atomic.write_json(COMPARE_REPORT, {"default": outcome.default, "detectors": outcome.reports,
                                       "skipped": outcome.skipped, "aligned": format_aligned,
                                       "fingerprints": fingerprints.of_rows(rows),
                                       "layers": [list(layer) for layer in layers],
                                       "ece_bins": metrics.ECE_BINS})
    atomic.write_json(COMPARE_METRICS, compare.headline(outcome))
    atomic.write_json(FORMAT_RELIANCE_METRICS, aligned.headline(format_aligned))
    sets, bars = compare.tables(outcome)
    atomic.write_csv(f"{COMPARE_PLOTS}/sets.csv", sets)
    atomic.write_csv(f"{COMPARE_PLOTS}/headline.csv", bars)
    atomic.write_csv(f"{COMPARE_PLOTS}/aligned.csv", aligned.table(format_aligned))
    for name, seconds in outcome.seconds.items():  # logged, never a DVC output
        log.info("%s: fit %.2f s, score %.2f s", name, seconds["fit"], seconds["score"])
    log.info("%d detectors compared, %d skipped; %d noisy views encoded in this run",
             len(outcome.fitted), len(outcome.skipped), views.computed)
    log.info("aligned condition: %d images encoded in this run", views.aligned_computed)


if __name__ == "__main__":
    stage.run(main)
