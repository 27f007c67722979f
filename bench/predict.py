"""Images/s of `fakedetect predict` on 256 demo test images, against the extract stage's own
path with the same backbone on the same images. Needs a trained run (`make repro`).
Prints `name: value` lines."""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fakedetect import extract, layouts, params
from fakedetect.featurestore import FeatureStore
from fakedetect.predict import Detector

PROJECT = Path(__file__).resolve().parents[1]
N_IMAGES = 256


def main() -> None:
    torch.set_num_threads(2)
    rows = layouts.read_manifest(PROJECT / "data/preprocessed.csv")
    rows = rows[(rows.split == "test") & (rows.status == "ok")].drop_duplicates("image_sha256").head(N_IMAGES)
    if len(rows) < N_IMAGES:
        sys.exit("run `make repro` first: the demo's test images are needed")
    detector = Detector(PROJECT)
    p = params.load_params(PROJECT / "params.yaml").extract
    paths = [str(PROJECT / path) for path in rows.path]
    detector.predict(paths[:32], p.batch_size, p.loader_workers)  # warm up both paths alike
    start = time.perf_counter()
    predictions = detector.predict(paths, p.batch_size, p.loader_workers)
    predict_s = time.perf_counter() - start
    assert all(r.status == "ok" for r in predictions)

    with tempfile.TemporaryDirectory() as store_dir:
        rows = rows.assign(image=[str(PROJECT / image) for image in rows.image])
        store = FeatureStore(store_dir, detector.backbone.identity)
        _, run = extract.extract(rows, detector.backbone, store, p.batch_size, p.loader_workers)

    start = time.perf_counter()
    command = subprocess.run([sys.executable, "-m", "fakedetect", "predict", "--json", *paths], cwd=PROJECT,
                             capture_output=True, text=True)
    command_s = time.perf_counter() - start
    assert command.returncode == 0, command.stderr

    print(f"images: {N_IMAGES}")
    print(f"backbone: {p.model}")
    print(f"batch_size: {p.batch_size}")
    print(f"predict_images_per_s: {N_IMAGES / predict_s:.1f}")
    print(f"extract_stage_images_per_s: {run.computed / run.seconds:.1f}")
    print(f"predict_over_extract_ratio: {(N_IMAGES / predict_s) / (run.computed / run.seconds):.2f}")
    print(f"command_wall_s_including_startup: {command_s:.1f}")


if __name__ == "__main__":
    main()
