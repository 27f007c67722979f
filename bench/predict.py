"""Images/s of `fakedetect predict` on 256 demo test images, against the extract stage's own
path with the same backbone on the same images (target: at least 0.8 of it). Measured twice:
the detector's scoring in this process, and the command itself as a user runs it (the
images/s it reports on stderr; its start-up, importing torch and TensorFlow and loading the
models, paid once per command, is reported apart). The command is also timed with --no-family, which
leaves out the second network (level 2's ResNet on each image judged fake), so that what the
command costs beyond the backbone is seen apart from what that network costs. The ratios leave out the
aligned check (`--no-aligned`: each image scored again after re-saving as JPEG 96, which encodes it a
second time); the command with it, predict's default, is timed apart. Each figure is the median of
three runs. Needs a trained run (`make repro`). Prints `name: value` lines. `--smoke`: 4 images,
one run each (seconds; the figures mean nothing)."""
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fakedetect import params
from fakedetect.features import extract, local_engine
from fakedetect.data import manifests
from fakedetect.attribution import network
from fakedetect.artifacts import PREPROCESSED_MANIFEST
from fakedetect.features.feature_store import FeatureStore
from fakedetect.predict import Detector

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = "--smoke" in sys.argv
N_IMAGES = 4 if SMOKE else 256
N_WARM_UP = 2 if SMOKE else 32
REPEATS = 1 if SMOKE else 3


def run_command(paths: list[str], *options: str) -> tuple[float, float]:
    """`python -m fakedetect predict --json` on the paths, as a user runs it: (wall seconds, the
    images/s of its scoring, which it reports on stderr)."""
    start = time.perf_counter()
    command = subprocess.run([sys.executable, "-m", "fakedetect", "predict", "--json", *options, *paths], cwd=PROJECT,
                             capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert command.returncode == 0, command.stderr
    assert len([json.loads(line) for line in command.stdout.splitlines()]) == len(paths)  # one object per image
    return seconds, float(re.search(r"\(([0-9.]+) images/s\)", command.stderr).group(1))


def network_costs(detector: Detector, paths: list[str]) -> tuple[float, float]:
    """Milliseconds per image of each network alone on one batch, the median of three: the
    backbone, which every image needs, and the family network, which each image judged fake needs."""
    backbone = detector.engine.backbone
    pixels = torch.from_numpy(np.concatenate([local_engine.read(local_engine.Item(path), detector.params.preprocess.size,
                                                           detector.limits)[0] for path in paths]))
    inputs = backbone.transform.batch(pixels.numpy())

    def per_image_ms(work) -> float:
        work()
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times) / len(paths)

    return (per_image_ms(lambda: backbone.encode(inputs)),
            per_image_ms(lambda: network.class_probabilities(detector.level2, pixels.permute(0, 3, 1, 2))))


def main() -> None:
    torch.set_num_threads(2)
    rows = manifests.read_manifest(PROJECT / PREPROCESSED_MANIFEST)
    rows = rows[(rows.split == "test") & (rows.status == "ok")].drop_duplicates("image_sha256").head(N_IMAGES)
    if len(rows) < N_IMAGES:
        sys.exit("run `make repro` first: the demo's test images are needed")
    detector = Detector(PROJECT, aligned=False)
    p = params.load_params(PROJECT / "params.yaml").extract
    paths = [str(PROJECT / path) for path in rows.path]
    detector.predict(paths[:N_WARM_UP], p.batch_size, p.loader_workers)  # warm up both paths alike
    rows = rows.assign(image=[str(PROJECT / image) for image in rows.image])
    predict_rates, extract_rates = [], []
    for _ in range(REPEATS):  # interleaved, so that a busy moment hits both
        start = time.perf_counter()
        predictions = detector.predict(paths, p.batch_size, p.loader_workers)
        predict_rates.append(N_IMAGES / (time.perf_counter() - start))
        assert all(r.status == "ok" for r in predictions)
        with tempfile.TemporaryDirectory() as store_dir:
            store = FeatureStore(store_dir, detector.engine.identity)
            _, run = extract.extract(rows, detector.engine, store, p.batch_size, p.loader_workers)
        extract_rates.append(run.computed / run.seconds)
    predict_rate, extract_rate = statistics.median(predict_rates), statistics.median(extract_rates)

    backbone_ms, family_ms = network_costs(detector, paths[:p.batch_size])

    runs, bare_rates, checked_rates = [], [], []
    for _ in range(REPEATS):
        runs.append(run_command(paths, "--no-aligned"))
        bare_rates.append(run_command(paths, "--no-aligned", "--no-family")[1])
        checked_rates.append(run_command(paths)[1])
    command_wall_s, command_rate = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    bare_rate, checked_rate = statistics.median(bare_rates), statistics.median(checked_rates)

    print(f"images: {N_IMAGES}")
    print(f"backbone: {p.model}")
    print(f"batch_size: {p.batch_size}")
    print(f"repeats_median_of: {REPEATS}")
    print(f"extract_stage_images_per_s: {extract_rate:.1f}")
    print(f"detector_in_process_images_per_s: {predict_rate:.1f}")
    print(f"detector_over_extract_ratio: {predict_rate / extract_rate:.2f}")
    print(f"command_images_per_s: {command_rate:.1f}")
    print(f"command_over_extract_ratio: {command_rate / extract_rate:.2f}")
    print(f"images_judged_fake: {sum(r.fake for r in predictions)}")
    print(f"command_no_family_images_per_s: {bare_rate:.1f}")
    print(f"command_no_family_over_extract_ratio: {bare_rate / extract_rate:.2f}")
    print(f"command_with_aligned_check_images_per_s: {checked_rate:.1f}")
    print(f"aligned_check_over_without_ratio: {checked_rate / command_rate:.2f}")
    print(f"backbone_ms_per_image: {backbone_ms:.1f}")
    print(f"family_network_ms_per_image: {family_ms:.1f}")
    print(f"family_over_backbone_cost_ratio: {family_ms / backbone_ms:.2f}")
    # The most the command could reach running the two networks one after the other, at no other cost:
    fake_share = sum(r.fake for r in predictions) / N_IMAGES
    print(f"ratio_bound_networks_in_series: {backbone_ms / (backbone_ms + fake_share * family_ms):.2f}")
    print(f"command_wall_s_{N_IMAGES}_images: {command_wall_s:.1f}")
    print(f"command_startup_s: {command_wall_s - N_IMAGES / command_rate:.1f}")


if __name__ == "__main__":
    main()
