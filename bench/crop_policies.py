"""The test crop policies (center, tiles, resize; docs/crop_policies.md "Measured on the demo"):
seconds per test image for each, and the 1-NN detector's mean AP over the test sets under each,
the training bank being the run's clean features (data/features, centre crops).

Two test sets of images: the demo's own test images (data/manifest.csv: 224 px, where the three
policies see the same pixels, so only their cost differs; TIMED of them timed), and the same demo test set generated at
NATIVE px (the demo builder with `patch_size: NATIVE`, from the test photos at least that large;
written to a temporary folder), where the centre crop sees a quarter of the image, the tiles all of
it, and the resize shrinks it by 2. Run from the root of a finished demo run (data/ of the pipeline),
with FAKEDETECT_STORE pointing at its store so that the clean features are not encoded again; the
seconds are measured into an empty temporary store. Prints `name: value` lines. `--smoke`: one real and
one fake image of each test set (a control set's one real), 2 of them timed (seconds; the figures mean nothing).
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  before anything that could import TensorFlow

import numpy as np
import pandas as pd
from tqdm import tqdm

from fakedetect.artifacts import FEATURES, MANIFEST
from fakedetect.data import demo, images, manifests
from fakedetect.detectors import pipeline_detectors, registry
from fakedetect.evaluation import metrics
from fakedetect.features import backbones, extract, feature_files
from fakedetect.features.feature_store import FeatureStore, store_root
from fakedetect.params import CropPolicy, Params

SMOKE = "--smoke" in sys.argv
NATIVE = 448
TIMED = 2 if SMOKE else 256  # images timed per policy (a seeded sample); the AP uses every test image
POLICIES = {"center": CropPolicy(), "tiles": CropPolicy(policy="tiles"), "resize": CropPolicy(policy="resize")}


def native_test_rows(p: Params, folder: Path) -> pd.DataFrame:
    """The demo's test set generated at NATIVE px under `folder`, as test rows (original = image)."""
    params = p.ingest.demo.model_copy(update={"patch_size": NATIVE, "out_dir": str(folder)})
    jobs = [job for job in demo._jobs(params, folder)
            if "/test/" in job.path and min(demo._photo(job.photo).shape[:2]) >= NATIVE]
    if SMOKE:  # the first image of each test set and label
        jobs = list({(Path(job.path).parts[-4], Path(job.path).parts[-2]): job for job in reversed(jobs)}.values())
    rows = []
    for job in tqdm(jobs, desc=f"demo test set at {NATIVE} px", mininterval=2):
        demo.make_image(job, params)
        sha = images.sha256_of(Path(job.path).read_bytes())
        test_set, label = Path(job.path).parts[-4], int(Path(job.path).parts[-2] == "1_fake")
        rows.append({"split": "test", "test_set": test_set, "label": label, "path": job.path, "sha256": sha,
                     "image": job.path, "image_sha256": sha})
    return pd.DataFrame(rows)


def mean_ap(p: Params, bank: np.ndarray, bank_rows: pd.DataFrame, test: np.ndarray, test_rows: pd.DataFrame) -> float:
    """nn_eval's figure: the 1-NN detector's mean AP over the test sets (thresholds from the clean val rows)."""
    rows = pd.concat([bank_rows, test_rows[["split", "test_set", "label"]]], ignore_index=True)
    matrix = np.concatenate([bank, test])
    knn = pipeline_detectors.fit_knn(p, matrix, rows, None)
    scored = np.flatnonzero(rows.split.isin(metrics.SCORED_SPLITS).to_numpy())
    result = knn.score(registry.Inputs(matrix[scored], [("all", matrix.shape[1])]))
    return metrics.report(rows.iloc[scored].reset_index(drop=True), result.ranking, result.decision, "nn",
                          thresholds=knn.thresholds)["mean"]["ap"]


def main() -> None:
    if not Path(FEATURES).exists():
        sys.exit(f"{FEATURES} not found: run from a finished demo run's root (dvc repro extract_clip)")
    p = Params()  # the demo's defaults: its backbone, batch size and loader processes
    e = p.extract
    bank, bank_rows = feature_files.load_features(FEATURES)
    manifest = manifests.read_manifest(MANIFEST).set_index("id")[["path", "sha256"]]
    test_rows = bank_rows[bank_rows.split == "test"].drop(columns=["path", "sha256"], errors="ignore")  # the manifest's
    demo_test = test_rows.join(manifest, on="id").reset_index(drop=True)
    if SMOKE:
        demo_test = demo_test.groupby(["test_set", "label"]).head(1).reset_index(drop=True)
    keep = (bank_rows.split != "test").to_numpy()
    bank, bank_rows = bank[keep], bank_rows[keep].reset_index(drop=True)
    backbone = backbones.create(e)
    store = FeatureStore(store_root(e.store), backbone.identity)
    with tempfile.TemporaryDirectory() as scratch:
        sets = {"demo": demo_test, f"native{NATIVE}": native_test_rows(p, Path(scratch) / "demo")}
        for name, rows in sets.items():
            print(f"{name}_test_images: {len(rows)}")
            for policy_name, policy in POLICIES.items():
                timed = rows.sample(min(TIMED, len(rows)), random_state=0)
                with tempfile.TemporaryDirectory() as empty:
                    start = time.perf_counter()
                    extract.extract(timed, backbone, FeatureStore(empty, backbone.identity), e.batch_size,
                                    e.loader_workers, policy)
                    seconds = (time.perf_counter() - start) / len(timed)
                features, _ = extract.extract(rows, backbone, store, e.batch_size, e.loader_workers, policy)
                print(f"{name}_seconds_per_image_{policy_name}: {seconds:.5f}")
                print(f"{name}_nn_mean_ap_{policy_name}: {mean_ap(p, bank, bank_rows, features, rows):.2f}")
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
