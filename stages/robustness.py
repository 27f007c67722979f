"""Stage robustness: the test images perturbed by JPEG, blur and resizing (params `robustness`),
encoded by the run's backbone and scored by its 1-NN, its linear head and every detector the compare
stage saved (models/detectors/) -> metrics/robustness.json (per method: clean, mean over the grid,
worst point), reports/robustness.json (every figure), the 1-NN's and the head's curves under
plots/robustness/ and plots/robustness.png.

Each (image, perturbation) is encoded once per backbone: the feature store (`extract.store`)
keeps it, so adding a grid point encodes only that point's images.
"""
import logging

from fakedetect import atomic, stage
from pathlib import Path

from fakedetect.detectors import pipeline_detectors, registry, scoring
from fakedetect.features import engines, feature_files
from fakedetect.data import manifests
from fakedetect.evaluation import plots, robustness
from fakedetect.artifacts import (DETECTOR_MODELS, FEATURES, MANIFEST, ROBUSTNESS_CURVES, ROBUSTNESS_METRICS,
                                  ROBUSTNESS_PICTURE, ROBUSTNESS_REPORT)
from fakedetect.features.feature_store import FeatureStore, store_root
from fakedetect.params import DetectorSpec, load_params

log = logging.getLogger("robustness")


def _write_curves(tables: dict[str, dict]) -> None:
    for key, curves in tables.items():
        for curve, table in curves.items():
            atomic.write_csv(f"{ROBUSTNESS_CURVES}/{key}_{curve}.csv", table)


def main() -> None:
    params = load_params()
    p = params.robustness
    matrix, rows = feature_files.load_features(FEATURES)
    chosen = robustness.choose(rows, manifests.read_manifest(MANIFEST), p)  # before any work: checks test_sets
    engine = engines.create(params.extract)
    try:
        store = FeatureStore(store_root(params.extract.store), engine.identity, params.extract.store_dtype)
        perturbed = robustness.perturbed_features(chosen, p.perturbations, engine, store,
                                                  params.extract.batch_size, params.extract.loader_workers)
    finally:
        engine.close()
    if perturbed.skipped:
        log.warning("%d test images skipped (see %s): %s", len(perturbed.skipped), ROBUSTNESS_REPORT,
                    ", ".join(sorted({s["reason"] for s in perturbed.skipped})))

    # The compare stage's detectors, torch-side kinds first: before the Keras head loads TensorFlow.
    found, left_out = ({}, {}) if not Path(DETECTOR_MODELS).is_dir() else scoring.saved(
        DETECTOR_MODELS, feature_files.load_layers(FEATURES, matrix.shape[1]))
    for name, why in left_out.items():
        log.info("detector %s is not scored here: %s", name, why)
    knn = pipeline_detectors.fit_knn(params, matrix, rows, FEATURES)
    head = pipeline_detectors.linear_detector(params, matrix, rows)  # Keras, if the head is Keras: after torch's loaders
    whole = [("all", matrix.shape[1])]
    scorers = [scoring.of("nn", knn, lambda x: knn.score(registry.Inputs(x, whole)), f"{params.nn.k}-NN"),
               scoring.of("linear", head, lambda x: head.score(registry.Inputs(x, whole)),
                          "external UnivFD head" if params.linear.external_head else params.linear.head)]
    named = {s.key: robustness.evaluate(s, matrix, rows, chosen, perturbed) for s in scorers}
    # keyed by detector name, as in the eval and compare metrics files; a compare detector that is one of
    # the named stages' (the same kind, features and params) is scored once
    names = {"nn": pipeline_detectors.KNN, "linear": "external_head" if params.linear.external_head else params.linear.head}
    same = {names["nn"]: knn.spec, names["linear"]: head.spec}
    saved = registry.saved(DETECTOR_MODELS) if found else {}
    methods = {names[key]: method for key, method in named.items()}
    for name, s in found.items():
        spec = DetectorSpec(kind=saved[name]["kind"], features=saved[name]["features"], params=saved[name]["params"])
        if same.get(name) != spec:
            methods[name if name not in methods else f"detector_{name}"] = robustness.evaluate(s, matrix, rows, chosen,
                                                                                               perturbed)
    report = robustness.report(methods, rows, chosen, perturbed, p.perturbations)
    atomic.write_json(ROBUSTNESS_REPORT, report)
    atomic.write_json(ROBUSTNESS_METRICS, robustness.headline(report))
    tables = {key: robustness.curves(method, p.perturbations) for key, method in named.items()}
    _write_curves(tables)  # the named stages' curves; the detectors' figures are in the report
    plots.robustness_summary(named, tables, ROBUSTNESS_PICTURE)
    for key, method in methods.items():
        log.info("%s, mean accuracy / AP %%: %s", method["name"], "; ".join(
            f"{name} {point['mean']['acc']} / {point['mean']['ap']}" for name, point in method["perturbations"].items()))
    log.info("%d (image, perturbation) pairs encoded in this run", perturbed.computed)


if __name__ == "__main__":
    stage.run(main)
