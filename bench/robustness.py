"""Images/s of the robustness stage's encoding path against the extract stage's, on the same 256
demo test images with the run's backbone (the demo's EfficientNet-Lite0 blocks), its batch size
and loader processes, each into an empty feature store (target: at least 0.85).

The extract path reads the preprocessed crops; the robustness path reads the original images and
blurs, re-encodes as JPEG and crops them in its loader processes (the demo grid's heaviest point,
blur 2 + JPEG 50), so the ratio says how much of that work the model hides. Median of three runs
each. Needs `dvc repro preprocess` (the demo set and its manifests). Prints `name: value` lines.
`--smoke`: 4 images, one run each (seconds; the figures mean nothing).
"""
import os
import statistics
import sys
import tempfile
import time

import torch

from fakedetect.features import backbones, extract
from fakedetect.data import manifests
from fakedetect.evaluation import robustness
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import FeatureStore
from fakedetect.params import Params, Perturbation

SMOKE = "--smoke" in sys.argv
N_IMAGES = 4 if SMOKE else 256
REPEATS = 1 if SMOKE else 3
POINT = Perturbation(blur=2, jpeg=50)


def images_per_s(encode) -> float:
    """The median images/s of REPEATS runs of encode(store) into a new empty store."""
    speeds = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as store:
            start = time.perf_counter()
            encode(store)
            speeds.append(N_IMAGES / (time.perf_counter() - start))
    return statistics.median(speeds)


def main() -> None:
    load_at_start = os.getloadavg()[0]
    try:
        rows = manifests.read_manifest(PREPROCESSED_MANIFEST)
    except FileNotFoundError:
        sys.exit(f"{PREPROCESSED_MANIFEST} not found: run `dvc repro preprocess` first")
    rows = rows[(rows.status == "ok") & (rows.split == "test")].drop_duplicates("sha256").head(N_IMAGES)
    rows = rows.reset_index(drop=True)
    assert len(rows) == N_IMAGES, f"only {len(rows)} test images"
    p = Params().extract
    backbone = backbones.create(p)
    backbone.encode(torch.zeros(8, 3, 224, 224))  # warm-up

    def extract_path(store: str) -> None:
        extract.extract(rows, backbone, FeatureStore(store, backbone.identity), p.batch_size, p.loader_workers)

    def robustness_path(store: str) -> None:
        robustness.perturbed_features(rows, [POINT], backbone, FeatureStore(store, backbone.identity),
                                      p.batch_size, p.loader_workers)

    extract_speed = images_per_s(extract_path)
    robustness_speed = images_per_s(robustness_path)
    print(f"images: {N_IMAGES}")
    print(f"backbone: {p.model} {p.demo_layers if p.model == 'efficientnet_lite0' else p.layers}")
    print(f"batch_size: {p.batch_size}")
    print(f"loader_workers: {p.loader_workers}")
    print(f"perturbation: blur {POINT.blur} + jpeg {POINT.jpeg}")
    print(f"load_average_at_start: {load_at_start:.2f}")
    print(f"load_average_at_end: {os.getloadavg()[0]:.2f}")
    print(f"extract_path_images_per_s: {extract_speed:.2f}")
    print(f"robustness_path_images_per_s: {robustness_speed:.2f}")
    print(f"ratio_robustness_over_extract: {robustness_speed / extract_speed:.3f}")


if __name__ == "__main__":
    main()
