"""Stage extract_clip: data/preprocessed.csv -> data/features/ (features.npy row-aligned with
rows.csv) and metrics/extract.json.

Features come from the backbone in params, each image computed once per backbone (the
feature store in `extract.store` keeps them across runs; test images cropped as `extract.test_crop`
says), or, as the stage import_features
(`images: []`), from the precomputed feature files of `extract.imports`."""
import logging

from fakedetect import atomic, stage
from fakedetect.features import engines, extract, feature_files, imports
from fakedetect.data import manifests
from fakedetect.artifacts import EXTRACT_METRICS, FEATURES, INGEST_METRICS, PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import FeatureStore, store_root
from fakedetect.params import load_params

ROW_COLUMNS = ["id", "split", "test_set", "label", "generator", "family", "category", "image", "image_sha256"]
log = logging.getLogger("extract_clip")


def main() -> None:
    p = load_params().extract
    summary = {"source": p.source, "model": p.model, "pretrained": p.pretrained}
    layers = None  # imported features: one slice, named by load_layers' fallback
    if p.source == "import":
        name, entries = p.imported
        matrix, rows = imports.import_features(entries, f"extract.imports.{name}")
    else:
        rows = manifests.read_manifest(PREPROCESSED_MANIFEST)
        rows = rows.loc[rows.status == "ok", ROW_COLUMNS + ["path", "sha256"]].reset_index(drop=True)  # + originals
        if rows.empty:
            raise stage.UserError(f"{PREPROCESSED_MANIFEST} has no usable rows: check {INGEST_METRICS}")
        engine = engines.create(p)
        try:
            store = FeatureStore(store_root(p.store), engine.identity, p.store_dtype)
            matrix, run = extract.extract(rows, engine, store, p.batch_size, p.loader_workers, p.test_crop)
            layers = engine.layers
        finally:
            engine.close()
        summary |= {"identity": engine.identity, "store_id": store.model_id, "images": run.images}
        # What this run did depends on the store's state and the machine: logged, never a DVC metric.
        log.info("%d images: %d computed, %d reused from %s in %.1f s on %s (%s images/s)", run.images, run.computed,
                 run.reused, store.folder, run.seconds, engine.device,
                 f"{run.computed / run.seconds:.1f}" if run.computed else "-")
        rows = rows[ROW_COLUMNS + ["path", "sha256"]]  # the originals: the compare stage's aligned condition reads them
    feature_files.save_features(FEATURES, matrix, rows)
    if layers:
        feature_files.save_layers(FEATURES, layers)
    summary |= {"rows": len(rows), "dimension": int(matrix.shape[1])}
    atomic.write_json(EXTRACT_METRICS, summary)
    log.info("%d rows x %d features -> %s", len(rows), matrix.shape[1], FEATURES)


if __name__ == "__main__":
    stage.run(main)
