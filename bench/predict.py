"""Images/s of `fakedetect predict` on 256 demo test images, against the extract stage's own
path with the same backbone on the same images (target: at least 0.8 of it). Measured twice:
the detector's scoring in this process, and the command itself as a user runs it, whose
images/s come from runs on 32 and on 256 images so that its start-up (importing torch and
TensorFlow, loading the models), paid once per command, is reported apart. Each figure is
the median of three runs. Needs a trained
run (`make repro`). Prints `name: value` lines."""
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fakedetect import extract, layouts, params
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.featurestore import FeatureStore
from fakedetect.predict import Detector

PROJECT = Path(__file__).resolve().parents[1]
N_IMAGES = 256
N_SMALL = 32
REPEATS = 3


def run_command(paths: list[str]) -> float:
    """Wall seconds of `python -m fakedetect predict --json` on the paths, as a user runs it."""
    start = time.perf_counter()
    command = subprocess.run([sys.executable, "-m", "fakedetect", "predict", "--json", *paths], cwd=PROJECT,
                             capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert command.returncode == 0, command.stderr
    assert len([json.loads(line) for line in command.stdout.splitlines()]) == len(paths)  # one object per image
    return seconds


def main() -> None:
    torch.set_num_threads(2)
    rows = layouts.read_manifest(PROJECT / PREPROCESSED_MANIFEST)
    rows = rows[(rows.split == "test") & (rows.status == "ok")].drop_duplicates("image_sha256").head(N_IMAGES)
    if len(rows) < N_IMAGES:
        sys.exit("run `make repro` first: the demo's test images are needed")
    detector = Detector(PROJECT)
    p = params.load_params(PROJECT / "params.yaml").extract
    paths = [str(PROJECT / path) for path in rows.path]
    detector.predict(paths[:N_SMALL], p.batch_size, p.loader_workers)  # warm up both paths alike
    rows = rows.assign(image=[str(PROJECT / image) for image in rows.image])
    predict_rates, extract_rates = [], []
    for _ in range(REPEATS):  # interleaved, so that a busy moment hits both
        start = time.perf_counter()
        predictions = detector.predict(paths, p.batch_size, p.loader_workers)
        predict_rates.append(N_IMAGES / (time.perf_counter() - start))
        assert all(r.status == "ok" for r in predictions)
        with tempfile.TemporaryDirectory() as store_dir:
            store = FeatureStore(store_dir, detector.backbone.identity)
            _, run = extract.extract(rows, detector.backbone, store, p.batch_size, p.loader_workers)
        extract_rates.append(run.computed / run.seconds)
    predict_rate, extract_rate = statistics.median(predict_rates), statistics.median(extract_rates)

    command_s = {n: statistics.median(run_command(paths[:n]) for _ in range(REPEATS)) for n in (N_SMALL, N_IMAGES)}
    command_rate = (N_IMAGES - N_SMALL) / (command_s[N_IMAGES] - command_s[N_SMALL])
    startup_s = command_s[N_SMALL] - N_SMALL / command_rate

    print(f"images: {N_IMAGES}")
    print(f"backbone: {p.model}")
    print(f"batch_size: {p.batch_size}")
    print(f"repeats_median_of: {REPEATS}")
    print(f"extract_stage_images_per_s: {extract_rate:.1f}")
    print(f"detector_in_process_images_per_s: {predict_rate:.1f}")
    print(f"detector_over_extract_ratio: {predict_rate / extract_rate:.2f}")
    print(f"command_images_per_s: {command_rate:.1f}")
    print(f"command_over_extract_ratio: {command_rate / extract_rate:.2f}")
    print(f"command_startup_s: {startup_s:.1f}")
    print(f"command_wall_s_{N_IMAGES}_images: {command_s[N_IMAGES]:.1f}")


if __name__ == "__main__":
    main()
